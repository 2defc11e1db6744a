"""Datasets: readers per format, the leave-one-out split, sequence datasets, prompts, data modules."""
