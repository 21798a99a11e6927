"""Concurrent workers in tests: `count` threads start `target` together, each in its own app context."""

from __future__ import annotations

import threading


def in_threads(app, target, count: int, timeout: float = 60) -> tuple[list, list]:
    """Run `target` in `count` threads released at once; (their results, their exceptions)."""
    barrier = threading.Barrier(count)
    results, errors = [], []

    def run() -> None:
        try:
            with app.app_context():
                barrier.wait()
                results.append(target())
        except Exception as error:  # noqa: BLE001 - collected, asserted on by the test
            errors.append(error)

    threads = [threading.Thread(target=run) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout)
        assert not thread.is_alive(), "a worker is stuck"
    return results, errors
