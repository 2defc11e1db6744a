"""LLaRA / iLoRA's evaluation protocol: the answer parser on real-looking generations, the candidate sets
(drawn in one place, against the shown history), the intervals, and the teacher and the student scored
on the same sets by `eval teacher` and `eval student`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from scipy import stats

from recdistill.config import compose
from recdistill.data.prepared import load_prepared
from recdistill.errors import ConfigError
from recdistill.evaluation.candidates import CandidateProtocol, chance_metrics, draw_candidate_sets
from recdistill.evaluation.intervals import mean_ci95
from recdistill.evaluation.llara import first_line, generation_metrics, parse_answer
from teacher_fixtures import CACHE, make_student, write_student_checkpoint

CANDS = ["Toy Story (1995)", "Sabrina (1995)", "Sabrina (1954)", "Heat (1995)", "Star Wars (1977)",
         "Return of the Jedi (1983)", "Fargo (1996)"]


@pytest.mark.parametrize("generated, expected", [
    ("Toy Story (1995)", "toy story (1995)"),                                  # the plain answer
    (" Fargo (1996)\nThe user watched many crime films, so...", "fargo (1996)"),  # explanation on line 2
    ("STAR WARS (1977)</s>", "star wars (1977)"),                              # case and trailing junk
    ("I would recommend Heat (1995).", "heat (1995)"),                         # the title inside a sentence
    ("Sabrina (1995)", "sabrina (1995)"),                                      # its remake is not matched
    ("Star Wars (1977), Return of the Jedi (1983)", None),                     # two candidates: invalid
    ("Titanic (1997)", None),                                                  # not a candidate: invalid
    ("\nToy Story (1995)", "toy story (1995)"),                                # stripped before the cut
    ("Based on the history:\nToy Story (1995)", None),                         # only the first line counts
    ("", None),
])
def test_parser_reads_answers_as_llara_does(generated, expected):
    assert parse_answer(generated, CANDS) == expected


def test_generation_metrics_valid_ratio_and_both_hr1():
    texts = ["Toy Story (1995)", "fargo (1996)\nbecause", "Heat (1995) or Fargo (1996)", "Titanic (1997)"]
    targets = ["Toy Story (1995)", "Heat (1995)", "Heat (1995)", "Fargo (1996)"]
    m = generation_metrics(texts, [CANDS] * 4, targets)
    assert m == {"valid_ratio": 0.5, "hr@1_valid": 0.5, "hr@1_all": 0.25}
    assert first_line("  a\nb ") == "a"


def test_intervals_and_chance():
    mean, half = mean_ci95([1.0, 2.0, 3.0])
    assert mean == 2.0 and half == pytest.approx(stats.t.ppf(0.975, 2) * 1.0 / np.sqrt(3))
    assert np.isnan(mean_ci95([0.4])[1])
    chance = chance_metrics(20)
    assert chance["cand20_hr@1"] == 0.05
    assert chance["cand20_ndcg@10"] == pytest.approx(sum(1 / np.log2(r + 2) for r in range(10)) / 20)


def test_candidate_sets_avoid_the_shown_history_and_are_seeded(tiny_prepared):
    data = load_prepared(tiny_prepared)
    shown = CandidateProtocol(history_items=3, num_candidates=10, draws=2, seed=1)
    a = draw_candidate_sets(data, "test", shown, draw=0)
    assert a.candidates.shape == (len(a.users), 10)
    older_drawn = 0
    for i in range(len(a.users)):
        row = a.candidates[i]
        assert len(set(row)) == 10 and row[a.target_index[i]] == a.targets[i] and (row == a.targets[i]).sum() == 1
        negatives = set(row) - {a.targets[i]}
        assert not negatives & set(a.shown(i))                       # never an item the prompt shows
        older_drawn += len(negatives & set(a.histories[i][:-3]))     # older history may be drawn (LLaRA)
    assert older_drawn > 0
    again = draw_candidate_sets(data, "test", shown, draw=0)
    assert np.array_equal(a.candidates, again.candidates)
    assert not np.array_equal(a.candidates, draw_candidate_sets(data, "test", shown, draw=1).candidates)
    every = CandidateProtocol(history_items=3, num_candidates=10, exclude="all", seed=1, limit_users=5)
    b = draw_candidate_sets(data, "test", every, draw=0)
    assert len(b.users) == 5
    for i in range(5):
        assert not (set(b.candidates[i]) - {b.targets[i]}) & set(b.histories[i])
    with pytest.raises(ConfigError, match="eval.candidates.exclude"):
        CandidateProtocol(exclude="none")


def test_teacher_prompts_list_exactly_the_drawn_candidates(tiny_prepared):
    from recdistill.teacher.prompt_encoder import PromptEncoder, load_templates
    from recdistill.teacher.candidate_protocol import _rows
    from teacher_fixtures import tokenizer

    data = load_prepared(tiny_prepared)
    sets = draw_candidate_sets(data, "val", CandidateProtocol(limit_users=4), draw=0)
    enc = PromptEncoder(tokenizer(), data.titles, load_templates())
    for i, row in enumerate(_rows(sets, enc, 0, 10)):
        slots = [s for s in row["item_slots"] if s]
        assert slots[-20:] == sets.candidates[i].tolist()             # template 0 lists candidates last
        assert slots[:-20] == sets.shown(i).tolist()                  # and the shown history before them


@pytest.fixture(scope="module")
def trained_llara(tmp_path_factory):
    from conftest import make_tiny_prepared
    from recdistill.recipes.teacher import train_teacher

    root = tmp_path_factory.mktemp("llara")
    prepared = make_tiny_prepared(root / "data" / "tiny")
    data = load_prepared(prepared)
    student_ckpt = write_student_checkpoint(root / "student.ckpt", make_student(), data)
    common = [f"prepared={prepared}", f"paths.runs_dir={root / 'runs'}", f"paths.cache_dir={CACHE}",
              "run.progress_bar=false", "eval.candidates.draws=2", "eval.candidates.limit_users=4",
              "eval.candidates.max_new_tokens=4", "train.eval_batch_size=4", "eval.candidates.splits=[val]"]
    cfg = compose("teacher", common + [
        "llm=tiny-llama", f"teacher.student_checkpoint={student_ckpt}", "train.batch_size=4",
        "train.limit_train_batches=2", "train.limit_val_batches=0", "train.limit_test_batches=0",
        "teacher.data.train_positions=last", "teacher.eval.protocol=llara"])
    return {"result": train_teacher(cfg), "common": common, "student": student_ckpt, "prepared": prepared,
            "root": root}


def test_train_teacher_reports_the_llara_protocol_beside_student_and_chance(trained_llara):
    m = trained_llara["result"].metrics
    for name in ("teacher_valid_ratio", "teacher_hr@1_valid", "teacher_hr@1_all", "teacher_cand20_hr@1",
                 "teacher_cand20_ndcg@10", "student_cand20_hr@1", "student_cand20_ndcg@10"):
        assert 0.0 <= m[f"val/llara_{name}"] <= 1.0 and f"val/llara_{name}_ci95" in m
    assert m["val/llara_chance_cand20_hr@1"] == 0.05 and m["val/llara_users"] == 4 and m["val/llara_draws"] == 2
    report = json.loads((Path(trained_llara["result"].run_dir) / "llara_protocol.json").read_text())
    draws = report["splits"]["val"]["draws"]
    assert [d["draw"] for d in draws] == [0, 1]
    mean = np.mean([d["teacher_cand20_ndcg@10"] for d in draws])
    assert m["val/llara_teacher_cand20_ndcg@10"] == pytest.approx(mean)
    assert report["splits"]["val"]["sample_answers"]                  # the raw answers are kept to read
    # the curriculum (on by default) took effect: over 2 steps the hybrid share was 0.5, then 1
    import pandas as pd

    logged = pd.read_csv(Path(trained_llara["result"].run_dir) / "logs" / "csv" / "metrics.csv")
    share = logged["train/hybrid_share_epoch"].dropna()
    assert len(share) == 1 and 0.0 < float(share.iloc[0]) < 1.0


def test_eval_teacher_and_eval_student_score_the_same_sets(trained_llara):
    from recdistill.recipes.student import evaluate_student
    from recdistill.recipes.teacher import evaluate_teacher

    common = trained_llara["common"]
    cfg = compose("teacher", common + ["teacher.eval.protocol=llara"])
    teacher_run = evaluate_teacher(cfg, trained_llara["result"].artefacts["adapter"]).metrics
    val_keys = [k for k in trained_llara["result"].metrics if k.startswith("val/llara_")]
    for key in val_keys:                                                 # a rerun draws the same sets
        assert teacher_run[key] == pytest.approx(trained_llara["result"].metrics[key], nan_ok=True), key
    student_run = evaluate_student(trained_llara["student"], [c for c in common if not c.startswith("train.")]
                                      + ["eval.protocol=llara"]).metrics
    for name in ("student_cand20_hr@1", "student_cand20_ndcg@10", "student_cand20_hr@5", "student_cand20_ndcg@5"):
        assert student_run[f"val/llara_{name}"] == pytest.approx(teacher_run[f"val/llara_{name}"])
    assert "val/ndcg@10" in student_run and "test/ndcg@10" in student_run   # the full-catalogue metrics stay
    with pytest.raises(ConfigError, match="teacher.eval.protocol"):
        evaluate_teacher(compose("teacher", common + ["teacher.eval.protocol=paper"]),
                         trained_llara["result"].artefacts["adapter"])
