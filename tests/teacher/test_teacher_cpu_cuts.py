"""The CPU teacher's cost cuts take effect and change nothing they should not: the LoRA scaling rule
from config, candidate listings (titles / [CansEmb] tokens / none), length-bucketed batches (the loss of
a batch does not depend on its padding) and adapters in the top layers only (backward stops there)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from recdistill.config import compose
from recdistill.data.prepared import load_prepared
from recdistill.teacher.prompt_encoder import PromptEncoder, load_templates
from recdistill.errors import ConfigError
from recdistill.teacher.buckets import LengthBucketSampler, bucketed_batches
from recdistill.teacher.data import PromptCollator, PromptDataset, TeacherDataModule, train_samples
from teacher_fixtures import linear_gate_spec, make_student, make_teacher, prompt_settings, tokenizer


def test_lora_scaling_comes_from_config_and_is_checked():
    from recdistill.recipes.teacher_settings import teacher_spec, validate_teacher_config

    assert teacher_spec(compose("teacher", []).teacher).lora.scaling == 32 / 2           # iLoRA's rule by default
    assert teacher_spec(compose("teacher", ["teacher.lora.scaling=standard"]).teacher).lora.scaling == 32 / 8
    with pytest.raises(ConfigError, match="teacher.lora.scaling"):
        validate_teacher_config(compose("teacher", ["teacher.lora.scaling=sqrt"]))


def test_adapters_saved_before_the_option_load_with_the_rule_they_were_trained_with():
    from recdistill.teacher.model import TeacherSpec

    old = {"mode": "ilora", "lora": {"r": 8, "num_experts": 4, "alpha": 32.0, "dropout": 0.1,
                                     "target_modules": ["q_proj"]}}
    assert TeacherSpec.from_dict(old).lora.scaling == 4.0
    assert TeacherSpec.from_dict(TeacherSpec.from_dict({**old, "lora": {**old["lora"], "scaling_rule": "ilora"}})
                                 .to_dict()).lora.scaling == 16.0


def _encoder(listing: str, num_items: int = 40) -> PromptEncoder:
    titles = [""] + [f"Movie {i}" for i in range(1, num_items + 1)]
    return PromptEncoder(tokenizer(), titles, load_templates(None, listing), listing)


def test_candidate_listings_change_the_prompt_as_documented():
    history, cands = [3, 5, 7], [9, 11, 13, 15]
    prompts = {lst: _encoder(lst).encode(history, cands, 0, target=11) for lst in ("titles", "tokens", "none")}
    enc = _encoder("tokens")
    for lst, p in prompts.items():
        slots = [s for s in p.item_slots if s]
        assert slots == history + (cands if lst != "none" else [])
        assert p.input_ids[p.answer_start:] == enc.title_ids[11] + [enc.eos_id]
        assert len(p.input_ids) == (_encoder(lst).fixed_length(0) + enc.block_length(history)
                                    + _encoder(lst).candidate_block_length(cands) + len(enc.answer_ids(11)))
    prompt_of = {lst: p.input_ids[: p.answer_start] for lst, p in prompts.items()}
    cand_title = enc.title_ids[13]
    text = {lst: tokenizer().decode(ids) for lst, ids in prompt_of.items()}
    assert "Movie 13" in text["titles"] and "Movie 13" not in text["tokens"] and "Movie 13" not in text["none"]
    assert "Movie 7" in text["none"]                                          # the history is still shown
    assert len(prompt_of["none"]) < len(prompt_of["tokens"]) < len(prompt_of["titles"])
    tokens_slots = [i for i, s in enumerate(prompts["tokens"].item_slots) if s in cands]
    assert all(prompts["tokens"].input_ids[i - 1] != cand_title[-1] for i in tokens_slots)  # no title before a slot
    assert "[CansHere]" not in "".join(load_templates(None, "none"))


def test_bad_listing_settings_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="teacher.prompt.candidates"):
        load_templates(None, "some")
    both = tmp_path / "t.txt"
    both.write_text("Seen [HistoryHere]. Pick from [CansHere]:\n")
    with pytest.raises(ConfigError, match="candidates=none"):
        load_templates(both, "none")


def test_build_encoder_reads_the_listing_from_config(tiny_prepared):
    from recdistill.teacher.build import build_encoder

    data = load_prepared(tiny_prepared)
    cfg = compose("teacher", ["teacher.prompt.candidates=none"])
    enc = build_encoder(tokenizer(), data, cfg.teacher.prompt.file, str(cfg.teacher.prompt.candidates))
    assert enc.candidates == "none" and enc.candidate_block_length([1, 2, 3]) == 0


def test_token_lengths_match_the_encoded_prompts(tiny_prepared):
    data = load_prepared(tiny_prepared)
    for lst in ("titles", "none"):
        ds = PromptDataset(train_samples(data, "all", 1), _encoder(lst), data.num_items, prompt_settings(),
                           "train", train=True)
        ds.set_epoch(2)
        assert ds.token_lengths().tolist() == [len(ds[i]["input_ids"]) for i in range(len(ds))]


def test_buckets_cover_every_sample_once_and_cut_padding():
    rng = np.random.default_rng(0)
    lengths = rng.integers(50, 400, size=1003)
    batches = bucketed_batches(lengths, 8, np.random.default_rng(1), bucket_batches=20)
    flat = sorted(i for b in batches for i in b)
    assert flat == list(range(1003)) and all(len(b) <= 8 for b in batches)

    def padding(groups):
        return sum(len(g) * lengths[g].max() - lengths[g].sum() for g in map(np.array, groups))

    plain = [list(range(i, min(i + 8, 1003))) for i in range(0, 1003, 8)]
    assert padding(batches) < 0.2 * padding(plain)
    assert bucketed_batches(lengths, 8, np.random.default_rng(1), 20) == batches     # seeded


def test_datamodule_uses_the_bucket_sampler_when_asked(tiny_prepared):
    data = load_prepared(tiny_prepared)
    s = prompt_settings()
    plain = TeacherDataModule(data, _encoder("titles"), s, 4, 4, {}, train_positions="all", last_n=1, limit_users=None,
                              length_bucket_batches=0, min_history=1)
    bucketed = TeacherDataModule(data, _encoder("titles"), s, 4, 4, {}, train_positions="all", last_n=1,
                                 limit_users=None, length_bucket_batches=5, min_history=1)
    assert not isinstance(plain.train_dataloader().batch_sampler, LengthBucketSampler)
    loader = bucketed.train_dataloader()
    assert isinstance(loader.batch_sampler, LengthBucketSampler)
    seen = sorted(int(x) for batch in loader for x in batch["position"] * 1000 + batch["user"])
    expected = sorted(int(p) * 1000 + int(u) for u, p in zip(bucketed.train_set.samples.users,
                                                             bucketed.train_set.samples.positions))
    assert seen == expected


def test_a_batch_loss_does_not_depend_on_its_padding(tiny_prepared):
    """Bucketing only removes padding: the same rows padded to a longer width give the same loss."""
    data = load_prepared(tiny_prepared)
    student = make_student()
    teacher, _ = make_teacher("ilora", student=student)
    enc = _encoder("titles")
    ds = PromptDataset(train_samples(data, "last", 1), enc, data.num_items, prompt_settings(),
                       "train", train=True)
    collate = PromptCollator(enc.slot_id, 10, with_prompts=False)
    tight = collate([ds[0], ds[1]])
    extra = 37
    padded = dict(tight)
    for key, fill in (("input_ids", enc.slot_id), ("attention_mask", 0), ("item_slots", 0), ("labels", -100)):
        padded[key] = torch.cat([torch.full((2, extra), fill, dtype=torch.long), tight[key]], dim=1)

    def loss(b):
        return teacher(b["input_ids"], b["attention_mask"], b["item_slots"], b["student_seq"], labels=b["labels"]).loss

    with torch.no_grad():
        torch.testing.assert_close(loss(tight), loss(padded), rtol=1e-5, atol=1e-5)


def test_top_layers_wrap_only_the_top_layers_and_backward_stops_below_them():
    from recdistill.teacher.build import build_teacher
    from recdistill.teacher.molora import molora_layers
    from teacher_fixtures import CACHE, llm_cfg

    student = make_student()
    full, _ = build_teacher(llm_cfg(), linear_gate_spec(), student, CACHE, tokenizer=tokenizer())
    top, _ = build_teacher(llm_cfg(), linear_gate_spec(top_layers=1), student, CACHE,
                           tokenizer=tokenizer())
    assert len(molora_layers(top.llm)) * 2 == len(molora_layers(full.llm))           # tiny-llama: 2 layers
    assert all(".layers.1." in n for n, p in top.named_parameters() if p.requires_grad and "lora" in n)
    assert not any(p.requires_grad for p in top.projector.parameters())
    assert all(p.requires_grad for p in full.projector.parameters())
    grads = {}
    for name, model in (("full", full), ("top", top)):
        hook = model.llm.model.layers[0].register_forward_hook(
            lambda m, a, out, name=name: grads.__setitem__(name, (out[0] if isinstance(out, tuple) else out).requires_grad))
        ids = torch.tensor([[5, 6, 7, 8, 9]])
        slots = torch.tensor([[0, 3, 0, 0, 0]])
        labels = torch.tensor([[-100, -100, -100, 8, 9]])
        model.train()
        model(ids, torch.ones_like(ids), slots, torch.tensor([[1, 2, 3]]), labels=labels).loss.backward()
        hook.remove()
    assert grads == {"full": True, "top": False}          # nothing below the top layer is in the graph
    assert top.gate.linear.weight.grad is not None         # the gate still learns through the top layer
    with pytest.raises(ConfigError, match="top_layers"):
        build_teacher(llm_cfg(), linear_gate_spec(top_layers=3), student, CACHE, tokenizer=tokenizer())
