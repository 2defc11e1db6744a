"""The teacher's options "as published" (issue 24): validation candidates drawn without knowing the test item,
LLaRA / iLoRA's prompt strings (whole-string tokenization with the tokenizer's special tokens, a random
template in evaluation, MovieLens titles rewritten), and model selection on HR@1 x ValidRatio."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from recdistill.data.prepared import load_prepared
from recdistill.evaluation.candidates import CandidateProtocol, draw_candidate_sets
from recdistill.teacher.data import PromptDataset, eval_samples
from recdistill.teacher.prompt_encoder import PromptEncoder, load_templates
from test_teacher_fixtures import prompt_settings, tokenizer


def _with_other_test_items(data):
    """The same data with every user's test item replaced by another item the user never touched."""
    changed = data.test_target.copy()
    for user in data.users():
        touched = set(data.train[int(user)].tolist()) | {int(data.val_target[int(user)]), int(changed[int(user)])}
        changed[int(user)] = next(i for i in range(1, data.num_items + 1) if i not in touched)
    return dataclasses.replace(data, test_target=changed)


def test_validation_candidates_do_not_depend_on_the_test_item(tiny_prepared):
    data = load_prepared(tiny_prepared)
    other = _with_other_test_items(data)
    protocol = CandidateProtocol(history_items=3, num_candidates=10, exclude="all", draws=1, seed=0)
    a, b = draw_candidate_sets(data, "val", protocol, 0), draw_candidate_sets(other, "val", protocol, 0)
    assert np.array_equal(a.candidates, b.candidates)
    # the teacher's own validation prompts (this toolkit's likelihood protocol) too
    enc = PromptEncoder(tokenizer(), data.titles, load_templates())
    sets = [PromptDataset(eval_samples(d, "val"), enc, d.num_items, prompt_settings(), "val", train=False)
            for d in (data, other)]
    for i in range(len(sets[0])):
        assert np.array_equal(sets[0].candidates(i), sets[1].candidates(i))
    # the test split still avoids everything the user touched up to its target
    t = draw_candidate_sets(data, "test", protocol, 0)
    for i in range(len(t.users)):
        assert not (set(t.candidates[i].tolist()) - {int(t.targets[i])}) & set(t.histories[i].tolist())
