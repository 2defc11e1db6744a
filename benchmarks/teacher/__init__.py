"""Benchmarks of the LLM teacher (SmolLM2 + iLoRA) on the CPU: throughput, cost cuts, precision, scoring, learning curve, score fusion."""
