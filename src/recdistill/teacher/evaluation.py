"""Greedy generation of the teacher's answers (iLoRA / LLaRA's generation protocol)."""

from __future__ import annotations

import torch


@torch.no_grad()
def generate_answers(teacher, batch: dict, tokenizer, max_new_tokens: int) -> list[str]:
    """Greedy generation from the left-padded prompts (the gate set per sample for the whole call)."""
    device = teacher.embedding_layer.weight.device
    mask = batch["prompt_mask"].to(device)
    gate = teacher.expert_weights(batch["student_seq"].to(device))
    if gate is not None:
        teacher.set_gate(gate)
    embeds = teacher.embed(batch["prompt_ids"].to(device), batch["prompt_slots"].to(device))
    out = teacher.llm.generate(inputs_embeds=embeds, attention_mask=mask, max_new_tokens=max_new_tokens,
                               do_sample=False, pad_token_id=tokenizer.pad_token_id,
                               eos_token_id=tokenizer.eos_token_id)
    # With inputs_embeds, generate returns only the new tokens.
    return tokenizer.batch_decode(out, skip_special_tokens=True)
