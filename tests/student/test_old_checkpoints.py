"""Checkpoints written by recdistill 0.1.0 (before the settings dataclasses) still load and score the same.

The two files in tests/fixtures/checkpoints_0.1.0 were trained on ``make_tiny_prepared(seed=0)`` (a student
and a student distilled from a SASRec teacher's outputs); ``expected_scores.json`` holds what they scored for
one history when they were written."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from conftest import make_tiny_prepared
from recdistill.data.prepared import load_prepared
from recdistill.student.checkpoint import load_recommender

FIXTURES = Path(__file__).parents[1] / "fixtures" / "checkpoints_0.1.0"


@pytest.mark.parametrize("kind", ["student", "distill"])
def test_a_checkpoint_written_before_the_settings_change_loads_and_scores_the_same(kind, tmp_path):
    expected = json.loads((FIXTURES / "expected_scores.json").read_text())[kind]
    data = load_prepared(make_tiny_prepared(tmp_path / "data" / "tiny"))
    recommender = load_recommender(FIXTURES / f"{kind}.ckpt", expect_kind=kind, data=data)
    assert recommender.num_items == expected["num_items"] and recommender.epoch == expected["epoch"]
    model = recommender.model.eval()
    history = torch.tensor([[0] * 3 + expected["history"]])
    with torch.no_grad():
        scores = model.score_all(model.user_representation(history))[0, 1:]
    assert torch.allclose(scores, torch.tensor(expected["scores"]), atol=1e-5)
