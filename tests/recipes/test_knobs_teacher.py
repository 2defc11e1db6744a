"""Teacher knobs that the teacher's own tests do not cover: the inference (candidate) batch size sets how
many forwards a scoring batch takes, and scoring reuses the prompt's KV cache (the prompt runs once).

Covered elsewhere, not repeated here: attention implementation, FlashAttention-2 and QLoRA refused on a
CPU, the LLM's gradient checkpointing (test_teacher_model.py::test_llm_knobs_take_effect and
::test_bad_llm_settings_are_clear_errors); cached scores equal full-prompt scores
(::test_kv_cache_scoring_equals_full_prompt_scoring)."""

from __future__ import annotations

import math

import pytest

from recdistill.config import compose
from recdistill.data.prepared import load_prepared
from recdistill.teacher.prompt_encoder import PromptEncoder, load_templates
from recdistill.teacher.data import PromptCollator, PromptDataset, eval_samples
from recdistill.teacher.scoring import score, score_candidates, score_full
from teacher_fixtures import make_teacher, prompt_settings, tokenizer


@pytest.fixture(scope="module")
def scoring_setup(tmp_path_factory):
    from conftest import make_tiny_prepared

    data = load_prepared(make_tiny_prepared(tmp_path_factory.mktemp("data") / "tiny"))
    enc = PromptEncoder(tokenizer(), data.titles, load_templates())
    ds = PromptDataset(eval_samples(data, "val"), enc, data.num_items, prompt_settings(), "val", False)
    batch = PromptCollator(enc.slot_id, 10, with_prompts=True)([ds[0]])  # one prompt, its 20 candidates
    teacher, _ = make_teacher("ilora")
    return teacher, batch, enc


def _layer_inputs(teacher, run):
    """[(rows, tokens)] of every forward through the LLM's first decoder layer while ``run()`` runs."""
    shapes = []
    layer = teacher.llm.get_base_model().model.layers[0] if hasattr(teacher.llm, "get_base_model") \
        else teacher.llm.model.layers[0]
    handle = layer.register_forward_pre_hook(lambda m, args, kwargs: shapes.append(tuple(
        (args[0] if args else kwargs["hidden_states"]).shape[:2])), with_kwargs=True)
    try:
        run()
    finally:
        handle.remove()
    return shapes


@pytest.mark.parametrize("candidate_batch_size", [7])
def test_candidate_batch_size_sets_the_forwards_and_the_prompt_runs_once(scoring_setup, candidate_batch_size):
    teacher, batch, enc = scoring_setup
    chunk = compose("teacher", [f"teacher.eval.candidate_batch_size={candidate_batch_size}"]).teacher.eval.candidate_batch_size
    shapes = _layer_inputs(teacher, lambda: score_candidates(teacher, batch, enc.answers, enc.slot_id,
                                                             chunk_size=int(chunk)))
    bsz, num_c = batch["candidates"].shape
    prompt_width = batch["prompt_ids"].shape[1]
    assert len(shapes) == 1 + math.ceil(bsz * num_c / chunk)          # one prompt pass + one per chunk
    assert shapes[0] == (bsz, prompt_width)                           # the prompts, once, all rows together
    assert all(rows <= chunk and tokens < prompt_width for rows, tokens in shapes[1:])  # titles only: cache reused


@pytest.mark.slow  # the uncached reference runs the prompt 20 times (~15 s here)
def test_without_cache_reuse_every_candidate_reruns_its_prompt(scoring_setup):
    teacher, batch, enc = scoring_setup
    prompt_width = batch["prompt_ids"].shape[1]
    cached = _layer_inputs(teacher, lambda: score_candidates(teacher, batch, enc.answers, enc.slot_id,
                                                             chunk_size=64))
    full = _layer_inputs(teacher, lambda: score_full(teacher, batch, enc.answers, enc.slot_id,
                                                     chunk_size=64))
    tokens = lambda shapes: sum(r * t for r, t in shapes)  # noqa: E731
    bsz, num_c = batch["candidates"].shape
    assert sum(r for r, _ in full) == bsz * num_c and all(t > prompt_width - 1 for _, t in full)
    assert tokens(full) > 5 * tokens(cached)                          # what the cache saves, in token-layers


def test_kv_cache_knob_switches_between_cache_reuse_and_full_prompts(scoring_setup):
    teacher, batch, enc = scoring_setup
    prompt_width = batch["prompt_ids"].shape[1]
    for value, reruns_prompt in (("true", False), ("false", True)):
        knob = compose("teacher", [f"teacher.eval.kv_cache={value}"]).teacher.eval.kv_cache
        shapes = _layer_inputs(teacher, lambda: score(teacher, batch, enc.answers, enc.slot_id,
                                                      chunk_size=64, kv_cache=knob))
        # with the cache the prompt runs once and later forwards see titles only; without it, every
        # forward carries a whole prompt
        assert all(t >= prompt_width for _, t in shapes[1:]) == reruns_prompt
