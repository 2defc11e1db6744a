"""The one-shot GPU check (`gpu_check.py`) and its arms (`gpucheck/`)."""
