"""Benchmarks: run each as a module from the repository root, e.g. `python -m bench.bench_documents`;
`python -m bench.run` prints the performance table (issue 9), `python -m bench.generate` builds a
large dataset."""
