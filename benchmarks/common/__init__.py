"""Helpers every workload's benchmarks share: the machine's facts (matrix-product rate, load average)."""
