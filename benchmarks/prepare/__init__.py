"""Benchmarks of `recdistill prepare`: reading and preparing interaction files."""
