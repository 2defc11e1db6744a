"""How the teacher is evaluated after its validation and test batches (:class:`TeacherEvalSettings`, the
``teacher.eval`` group) and greedy generation of its answers (iLoRA / LLaRA's generation protocol)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from recdistill.errors import ConfigError

EVAL_METHODS = ("likelihood", "generate", "both")
SCORE_NORMS = ("sum", "mean")
# teacher.eval.select_on: the checkpoint kept is the best on the likelihood NDCG@10 over the candidates (ours)
# or on HR@1 x ValidRatio of greedy answers (LLaRA / iLoRA's model selection).
SELECTIONS = ("likelihood_ndcg", "hr1_x_valid_ratio")
GENERATION_MONITOR = "val/gen_hr@1"   # hits over every answer = HR@1 over valid answers x ValidRatio


@dataclass
class TeacherEvalSettings:
    """``teacher.eval`` (its defaults and their meaning: ``config/conf/teacher/ilora.yaml``), checked here
    once. ``protocol`` is not here: the recipe picks the protocol before it builds a module."""

    method: str                  # likelihood | generate | both
    score_norm: str              # sum | mean: log P(title + EOS | prompt) or its per-token mean
    candidate_batch_size: int    # candidate continuations per forward
    max_new_tokens: int          # generation length for method=generate / both
    kv_cache: bool               # reuse each prompt's KV cache for its candidates
    min_new_tokens: int          # EOS is not allowed before this many new tokens (LLaRA / iLoRA: 1; ours 0)

    def __post_init__(self):
        for key, value, options in (("method", self.method, EVAL_METHODS), ("score_norm", self.score_norm, SCORE_NORMS)):
            if value not in options:
                raise ConfigError(f"teacher.eval.{key}={value!r} is not valid; choose one of: {', '.join(options)}")
        for key in ("candidate_batch_size", "max_new_tokens"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"teacher.eval.{key}={value!r} is not valid; expected an integer > 0")
        if isinstance(self.min_new_tokens, bool) or not isinstance(self.min_new_tokens, int) or not (
                0 <= self.min_new_tokens <= self.max_new_tokens):
            raise ConfigError(f"teacher.eval.min_new_tokens={self.min_new_tokens!r} is not valid; expected an "
                              f"integer from 0 to teacher.eval.max_new_tokens ({self.max_new_tokens})")

    @property
    def likelihood(self) -> bool:
        return self.method in ("likelihood", "both")

    @property
    def generate(self) -> bool:
        return self.method in ("generate", "both")


@torch.no_grad()
def generate_answers(teacher, batch: dict, tokenizer, max_new_tokens: int, min_new_tokens: int = 0) -> list[str]:
    """Greedy generation from the left-padded prompts (the gate set per sample for the whole call); with
    ``min_new_tokens`` > 0 EOS is masked until that many tokens are out (transformers' own processor)."""
    device = teacher.embedding_layer.weight.device
    mask = batch["prompt_mask"].to(device)
    gate = teacher.expert_weights(batch["student_seq"].to(device))
    if gate is not None:
        teacher.set_gate(gate)
    embeds = teacher.embed(batch["prompt_ids"].to(device), batch["prompt_slots"].to(device))
    minimum = {"min_new_tokens": int(min_new_tokens)} if min_new_tokens > 0 else {}
    out = teacher.llm.generate(inputs_embeds=embeds, attention_mask=mask, max_new_tokens=max_new_tokens,
                               do_sample=False, pad_token_id=tokenizer.pad_token_id,
                               eos_token_id=tokenizer.eos_token_id, **minimum)
    # With inputs_embeds, generate returns only the new tokens.
    return tokenizer.batch_decode(out, skip_special_tokens=True)
