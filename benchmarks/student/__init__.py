"""Benchmarks of the SASRec student: quality over seeds and training/evaluation speed."""
