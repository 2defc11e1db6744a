"""The LLM teacher the iLoRA way: loading, prompts, mixture-of-LoRA experts, training, scoring, export."""
