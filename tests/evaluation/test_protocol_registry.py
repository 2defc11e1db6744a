"""The evaluation protocols' registry: every metric key finds its one family, ``eval.protocol`` is checked
against the registered protocols, and a protocol made up here (one module's worth of code plus a settings
key, as a new protocol would be) runs through ``eval student`` and gets its own table in the report."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from recdistill.data.prepared import load_prepared
from recdistill.errors import ConfigError
from recdistill.evaluation.protocols import Protocol, family_of, on_demand_choices, register, unregister
from recdistill.evaluation.protocols.notes import users_line
from recdistill.evaluation.student_scores import student_scores
from teacher_fixtures import make_student, write_student_checkpoint


@pytest.mark.parametrize("key, protocol, family", [
    ("val/ndcg@10", "full", "full"),
    ("test/recall@5", "full", "full"),
    ("test/sampled100_ndcg@10", "sampled", "sampled100"),
    ("val/cand20_hr@1", "teacher_candidates", "cand20"),
    ("val/llara_student_cand20_ndcg@10", "llara", "llara"),
    ("test/llara_teacher_valid_ratio", "llara", "llara"),
])
def test_every_metric_key_finds_its_family(key, protocol, family):
    found = family_of(key)
    assert found is not None and (found[0].name, found[1]) == (protocol, family)


@pytest.mark.parametrize("key", ["val/users", "test/chance_ndcg@10", "val/llara_student_cand20_ndcg@10_ci95",
                                 "val/llara_chance_cand20_hr@1", "test/head_ndcg@10", "train/loss", "epoch"])
def test_counts_chance_and_other_keys_belong_to_no_family(key):
    assert family_of(key) is None


def test_a_name_is_registered_once():
    with pytest.raises(ValueError, match="'llara' is registered twice"):
        register(Protocol(name="llara", prefix="other_", title="t", about="a"))
    assert on_demand_choices() == ["full", "llara"]


# --- a made-up protocol: the full ranking's HR@10 over the users whose target is a popular item ----------

def popular_settings(evaluation: dict) -> int:
    top = int(evaluation["popular_targets"]["top"])  # its settings key, as conf/eval/default.yaml would hold it
    if top < 1:
        raise ConfigError(f"eval.popular_targets.top={top} is not valid; expected >= 1")
    return top


def run_popular_targets(data, model, top: int) -> tuple[dict, dict]:
    popular = set(np.argsort(-data.item_train_counts[1:], kind="stable")[:top] + 1)
    metrics = {}
    for split in ("val", "test"):
        users = [int(u) for u in data.users() if int(data.target(split, int(u))) in popular]
        histories = [data.history(split, u) for u in users]
        catalogue = np.tile(np.arange(1, data.num_items + 1), (len(users), 1))
        scores = student_scores(model, histories, catalogue)
        targets = np.array([data.target(split, u) for u in users]) - 1
        ranks = (scores > scores[np.arange(len(users)), targets][:, None]).sum(1)
        metrics[f"{split}/poptarget_hr@10"] = float((ranks < 10).float().mean())
        metrics[f"{split}/poptarget_users"] = float(len(users))
    return metrics, {"popular_items": sorted(int(i) for i in popular)}


POPULAR_TARGETS = Protocol(
    name="popular_targets", prefix="poptarget_", title="Full-catalogue HR@10 on popular targets",
    about="The full ranking's HR@10 over the users whose target is one of the most-trained items.",
    metric=r"hr@10", notes=lambda groups, runs: [users_line(runs, "poptarget_users")],
    read_settings=popular_settings, run=run_popular_targets)


@pytest.fixture
def popular_targets():
    register(POPULAR_TARGETS)
    yield POPULAR_TARGETS
    unregister(POPULAR_TARGETS.name)


def test_a_registered_protocol_runs_through_eval_student_and_gets_its_report_table(popular_targets, tmp_path):
    from conftest import make_tiny_prepared
    from recdistill.recipes.student import evaluate_student
    from recdistill.report.page import render_report

    prepared = make_tiny_prepared(tmp_path / "data" / "tiny")
    checkpoint = write_student_checkpoint(tmp_path / "student.ckpt", make_student(), load_prepared(prepared))
    common = [f"prepared={prepared}", f"paths.runs_dir={tmp_path / 'runs'}", "run.progress_bar=false"]
    with pytest.raises(ConfigError, match="eval.protocol='nope' is not valid; choose one of: full, llara, "
                                          "popular_targets"):
        evaluate_student(checkpoint, [*common, "eval.protocol=nope"])
    with pytest.raises(ConfigError, match="eval.popular_targets.top=0"):  # checked before anything runs
        evaluate_student(checkpoint, [*common, "eval.protocol=popular_targets", "+eval.popular_targets.top=0"])
    assert not (tmp_path / "runs").exists()

    result = evaluate_student(checkpoint, [*common, "eval.protocol=popular_targets", "+eval.popular_targets.top=10"])
    m = result.metrics
    assert 0.0 <= m["test/poptarget_hr@10"] <= 1.0 and m["test/poptarget_users"] >= 1
    assert "test/ndcg@10" in m and not any("llara_" in k for k in m)          # the full ranking stays
    saved = json.loads((Path(result.run_dir) / "popular_targets_protocol.json").read_text())
    assert len(saved["popular_items"]) == 10

    text = render_report([result.run_dir], tmp_path / "report").markdown.read_text()
    section = text.split("### Full-catalogue HR@10 on popular targets", 1)[1].split("\n#", 1)[0]
    assert "most-trained items" in section and "Users measured:" in section
    assert "test/poptarget_hr@10" in section and "test/ndcg@10" not in section


def test_llara_metrics_get_their_own_report_table(tmp_path):
    from conftest import make_tiny_prepared
    from recdistill.recipes.student import evaluate_student
    from recdistill.report.page import render_report

    prepared = make_tiny_prepared(tmp_path / "data" / "tiny")
    checkpoint = write_student_checkpoint(tmp_path / "student.ckpt", make_student(), load_prepared(prepared))
    result = evaluate_student(checkpoint, [f"prepared={prepared}", f"paths.runs_dir={tmp_path / 'runs'}",
                                           "run.progress_bar=false", "eval.protocol=llara", "eval.candidates.draws=2",
                                           "eval.candidates.limit_users=4", "eval.candidates.splits=[val]"])
    assert (Path(result.run_dir) / "llara_protocol.json").is_file()
    text = render_report([result.run_dir], tmp_path / "report").markdown.read_text()
    section = text.split("### Candidate protocol of LLaRA / iLoRA", 1)[1].split("\n#", 1)[0]
    assert "val/llara_student_cand20_ndcg@10" in section and "_ci95" not in section.split("appendix", 1)[1]
    assert "student-eval: val 4." in section and "Chance (a random order of the candidates" in section
