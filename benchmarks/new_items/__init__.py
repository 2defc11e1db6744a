"""Benchmarks of new and rare items: item-text distillation, the grounded teacher, the cost of `recdistill add-items`."""
