"""Benchmarks of distillation (DLLM2Rec): cost per epoch and per step, and the gates against the student alone."""
