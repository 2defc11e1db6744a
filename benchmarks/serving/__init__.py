"""Benchmarks of serving: the student through torch, ONNX Runtime and HTTP against the LLM teacher's cost."""
