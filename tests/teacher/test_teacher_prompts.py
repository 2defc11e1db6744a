"""Prompt building: templates, placeholder slots, candidates, cuts; the teacher's datasets."""

from __future__ import annotations

import numpy as np
import pytest

from recdistill.data.prepared import load_prepared
from recdistill.evaluation.candidates import sample_candidates
from recdistill.teacher.prompt_encoder import PromptEncoder, load_templates
from recdistill.errors import ConfigError
from recdistill.teacher.data import PromptCollator, PromptDataset, eval_samples, train_samples
from teacher_fixtures import prompt_settings, tokenizer


def test_default_templates_are_the_three_of_ilora():
    templates = load_templates()
    assert len(templates) == 3
    assert all("[HistoryHere]" in t and "[CansHere]" in t for t in templates)
    assert templates[0].endswith("Answer:")


def test_templates_from_a_file_and_bad_files(tmp_path):
    good = tmp_path / "mine.txt"
    good.write_text("# comment\nSeen: [HistoryHere]. Pick from [CansHere]. Pick:\n")
    assert load_templates(good) == ["Seen: [HistoryHere]. Pick from [CansHere]. Pick:"]
    bad = tmp_path / "bad.txt"
    bad.write_text("no markers here\n")
    with pytest.raises(ConfigError, match=r"\[HistoryHere\] must appear exactly once"):
        load_templates(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_templates(tmp_path / "missing.txt")


def _encoder(num_items=40):
    titles = [""] + [f"Movie {i}" for i in range(1, num_items + 1)]
    return PromptEncoder(tokenizer(), titles, load_templates())


def test_slots_sit_exactly_after_each_title_and_answer_follows_prompt():
    enc = _encoder()
    history, cands = [3, 5, 7], [9, 11, 13, 15]
    p = enc.encode(history, cands, template=0, target=11)
    slots = np.array(p.item_slots)
    positions = np.flatnonzero(slots)
    assert list(slots[positions]) == history + cands
    for pos, item in zip(positions, history + cands):
        title = enc.title_ids[item]
        assert p.input_ids[pos - len(title): pos] == title      # the title right before its slot
        assert p.input_ids[pos] == enc.slot_id
    assert p.input_ids[p.answer_start:] == enc.title_ids[11] + [enc.eos_id]
    assert all(s == 0 for s in p.item_slots[p.answer_start:])
    decoded = tokenizer().decode(p.input_ids[: p.answer_start])
    assert decoded.startswith("This user has watched Movie 3") and decoded.endswith("Answer:")


def test_max_tokens_cuts_oldest_history_first():
    enc = _encoder()
    history, cands = list(range(1, 11)), list(range(20, 40))
    full = enc.encode(history, cands, 0, target=20)
    cut = enc.encode(history, cands, 0, target=20, max_tokens=len(full.input_ids) - 5)
    assert cut.history_cut >= 1 and cut.history_used == 10 - cut.history_cut
    assert len(cut.input_ids) <= len(full.input_ids) - 5
    shown = [s for s in cut.item_slots if s][: cut.history_used]
    assert shown == history[cut.history_cut:]                 # the newest items stay
    with pytest.raises(Exception, match="max_tokens"):
        enc.encode(history, cands, 0, target=20, max_tokens=10)


def test_candidates_hold_target_and_unseen_items_only():
    rng = np.random.default_rng(0)
    seen = np.arange(1, 15)
    cands = sample_candidates(rng, target=30, seen=seen, num_items=40, count=20)
    assert len(cands) == 20 and len(set(cands)) == 20 and 30 in cands
    assert not set(cands) & set(seen)
    with pytest.raises(ConfigError):
        sample_candidates(rng, 1, seen, 40, count=41)


def test_datasets_redraw_in_training_and_stay_fixed_in_evaluation(tiny_prepared):
    data = load_prepared(tiny_prepared)
    enc = _encoder()
    s = prompt_settings()
    train = PromptDataset(train_samples(data, "last", 1), enc, data.num_items, s, "train", train=True)
    val = PromptDataset(eval_samples(data, "val"), enc, data.num_items, s, "val", train=False)
    first = [tuple(train.candidates(i)) for i in range(10)]
    assert first == [tuple(train.candidates(i)) for i in range(10)]         # seeded
    train.set_epoch(1)
    assert first != [tuple(train.candidates(i)) for i in range(10)]         # re-drawn per epoch
    templates = {train.template(i) for i in range(len(train))}
    assert len(templates) > 1                                               # drawn per sample
    val_cands = [tuple(val.candidates(i)) for i in range(5)]
    val.set_epoch(3)
    assert val_cands == [tuple(val.candidates(i)) for i in range(5)]
    assert {val.template(i) for i in range(len(val))} == {0}
    for i in range(len(val)):
        row = val[i]
        assert row["candidates"][row["target_index"]] == data.val_target[row["user"]]
        # what the user touched by the validation target (the test item is not known then: it may be drawn)
        seen = set(data.train[row["user"]]) | {data.val_target[row["user"]]}
        if data.num_items - len(seen) >= 19:      # else the documented fallback draws seen items too
            assert not (set(row["candidates"]) - {row["target"]}) & seen


def test_collator_labels_only_answer_tokens_left_padded(tiny_prepared):
    data = load_prepared(tiny_prepared)
    enc = _encoder()
    ds = PromptDataset(eval_samples(data, "val"), enc, data.num_items, prompt_settings(), "val", False)
    rows = [ds[i] for i in range(4)]
    batch = PromptCollator(enc.slot_id, 10, with_prompts=True)(rows)
    for b, r in enumerate(rows):
        labelled = batch["labels"][b][batch["labels"][b] != -100].tolist()
        assert labelled == r["input_ids"][r["answer_start"]:]
        assert batch["input_ids"][b, -1].item() == enc.eos_id                 # answers end at the last column
        prompt = batch["prompt_ids"][b][batch["prompt_mask"][b] > 0].tolist()
        assert prompt == r["input_ids"][: r["answer_start"]]
    assert batch["student_seq"].shape == (4, 10)


def test_cuts_planned_ahead_are_counted(tiny_prepared):
    data = load_prepared(tiny_prepared)
    enc = _encoder()
    s = prompt_settings(max_tokens=170)
    ds = PromptDataset(train_samples(data, "last", 1), enc, data.num_items, s, "train", train=True)
    counts = ds.cut_counts()
    assert counts["prompts_cut"] > 0 and counts["history_items_cut"] >= counts["prompts_cut"]
    assert max(len(ds[i]["input_ids"]) for i in range(len(ds))) <= 170
    none = PromptDataset(train_samples(data, "last", 1), enc, data.num_items, prompt_settings(),
                         "train", train=True)
    assert none.cut_counts()["prompts_cut"] == 0
