"""The benchmarks, grouped by workload. Run a script by its path: `python benchmarks/<workload>/<script>.py`.
Index: benchmarks/README.md."""
