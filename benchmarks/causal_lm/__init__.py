"""Benchmarks of the causal-LM workload (`recdistill lm`): throughput, memory, int8, Shakespeare."""
