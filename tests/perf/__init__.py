"""Tests that pin performance internals (marked `perf`): query counts, SQL text, write order,
prepared statements, read-only pages, caches. `make test` runs them; `pytest -m "not perf"` skips them."""
