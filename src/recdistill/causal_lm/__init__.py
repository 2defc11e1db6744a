"""The causal-LM workload: a GPT-style model trained from scratch on the shared engine (pretraining on
Shakespeare, fine-tuning on dialogue), perplexity, and dynamic int8 quantization. See docs/lm.md."""

from recdistill.causal_lm.model import GPT, PRESETS, GPTConfig, preset_config

__all__ = ["GPT", "GPTConfig", "PRESETS", "preset_config"]
