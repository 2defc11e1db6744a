"""benchmarks/teacher/teacher_learning_curve.py on the tiny Llama: it writes its results files, and a run killed
mid-way resumes from its checkpoint to exactly the results of an uninterrupted run. Marked slow: each test
runs the benchmark two or three times (a model load, a SASRec and a plot each), tens of seconds on 2 cores."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from recdistill.data.prepared import load_prepared
from teacher_fixtures import make_student, write_student_checkpoint

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root: `benchmarks.*`


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    from conftest import make_tiny_prepared

    root = tmp_path_factory.mktemp("curve")
    prepared = make_tiny_prepared(root / "tiny")
    student = write_student_checkpoint(root / "student.ckpt", make_student(), load_prepared(prepared))
    return root, prepared, student


def _run(root, prepared, student, name, *extra):
    from benchmarks.teacher.teacher_learning_curve import main

    return main(["--student-checkpoint", student, "--prepared", str(prepared), "--llm", "tiny-llama",
                 "--max-steps", "5", "--eval-steps", "0,2", "--val-users", "12", "--batch-size", "2",
                 "--candidates", "titles", "--length-bucket-batches", "3", "--last-n", "3", "--checkpoint-every", "1",
                 "--threads", "1", "--work", str(root / name), "--out", str(root / f"out-{name}"), "--name", "curve",
                 *extra])


@pytest.mark.slow
def test_curve_writes_results_and_resumes_to_the_same_numbers(setup):
    root, prepared, student = setup
    assert _run(root, prepared, student, "straight") == 0
    assert _run(root, prepared, student, "killed", "--stop-after", "3") == 3      # leaves like a kill, after step 3
    partial = json.loads((root / "out-killed" / "curve.json").read_text())
    assert [p["step"] for p in partial["points"]] == [0, 2] and not partial["finished"]
    assert _run(root, prepared, student, "killed") == 0
    straight = json.loads((root / "out-straight" / "curve.json").read_text())
    resumed = json.loads((root / "out-killed" / "curve.json").read_text())
    assert resumed["resumed"] == 1 and straight["resumed"] == 0
    assert [p["step"] for p in resumed["points"]] == [0, 2, 5] and resumed["stopped_by"] == "max_steps"
    assert resumed["train_loss_by_step"] == straight["train_loss_by_step"]   # same batches, schedule, dropout
    for a, b in zip(straight["points"], resumed["points"]):
        assert a["metrics"] == b["metrics"]
    sas = straight["baselines"]["sasrec_frozen"]["ndcg@10"]
    assert sas["n"] == 12 and sas["ci95_low"] <= sas["mean"] <= sas["ci95_high"]
    assert abs(straight["baselines"]["chance"]["hr@1"] - 0.05) < 1e-12
    md = (root / "out-straight" / "curve.md").read_text()
    assert "frozen SASRec" in md and "untrained teacher" in md and "finished (max_steps)" in md
    assert (root / "out-straight" / "curve.png").stat().st_size > 1000
    assert (root / "straight" / "adapter" / "adapter.safetensors").is_file()


@pytest.mark.slow
def test_resume_refuses_other_settings(setup):
    root, prepared, student = setup
    assert _run(root, prepared, student, "other", "--stop-after", "1") == 3
    with pytest.raises(SystemExit, match="other settings"):
        _run(root, prepared, student, "other", "--lr", "1e-3")


def test_curve_candidates_are_the_protocols_sets(setup):
    """The curve draws its validation candidates with the drawer `eval teacher` / `eval student` use, so
    its teacher and SASRec figures sit on the sets those commands score with the same settings."""
    import numpy as np

    from recdistill.config import compose
    from recdistill.evaluation.candidates import draw_candidate_sets
    from recdistill.recipes.protocols import candidate_protocol, eval_values

    root, prepared, student = setup
    if not (root / "straight" / "val_scores_step0.npz").exists():
        assert _run(root, prepared, student, "straight") == 0
    saved = np.load(root / "straight" / "val_scores_step0.npz")
    cfg = compose("teacher", ["eval.candidates.exclude=all", "eval.candidates.limit_users=12", "eval.candidates.draws=1"])
    sets = draw_candidate_sets(load_prepared(prepared), "val", candidate_protocol(eval_values(cfg)), draw=0)
    assert np.array_equal(saved["candidates"], sets.candidates) and np.array_equal(saved["users"], sets.users)
    assert np.array_equal(saved["target_index"], sets.target_index) and saved["scores"].shape == (12, 20)


@pytest.mark.slow
def test_a_budget_stopped_curve_goes_on_with_a_larger_budget(setup):
    root, prepared, student = setup
    assert _run(root, prepared, student, "extend", "--budget-minutes", "0.00001") == 0
    first = json.loads((root / "out-extend" / "curve.json").read_text())
    assert first["stopped_by"] == "budget" and [p["step"] for p in first["points"]] == [0, 1]
    assert _run(root, prepared, student, "extend", "--budget-minutes", "10") == 0
    more = json.loads((root / "out-extend" / "curve.json").read_text())
    assert [p["step"] for p in more["points"]] == [0, 1, 2, 5] and more["stopped_by"] == "max_steps"
