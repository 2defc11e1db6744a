"""`distill.kd.weight=auto`: the weight chosen on validation from a grid that holds 0. A teacher that ranks
at random gets weight 0 (the result is the student alone); a converged teacher gets a positive weight; the
choice and its curve are saved with the run and shown in the report."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from recdistill.config import compose
from recdistill.errors import ConfigError
from recdistill.recipes.distill_weight import choose, weight_grid

COMMON = ["student.max_len=8", "student.hidden_size=16", "student.num_blocks=1", "train.batch_size=32",
          "run.progress_bar=false", "eval.sampled_negatives=0", "efficiency.seed=0"]


class RandomTeacher:
    """A teacher whose top-K is random: the kind that must get weight 0."""

    def __init__(self, num_items: int):
        self.num_items = num_items
        self.rng = np.random.default_rng(0)

    def identity(self) -> dict:
        return {"kind": "student", "model": "random", "adapter": None, "config_hash": "random-0"}

    def rank(self, histories, candidates, top_k):
        items = np.stack([self.rng.choice(np.setdiff1d(np.arange(1, self.num_items + 1), h), top_k, replace=False)
                          for h in histories])
        return items, np.sort(self.rng.random(items.shape), axis=1)[:, ::-1].copy()

    def item_embeddings(self):
        return None


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    from omegaconf import OmegaConf

    from conftest import make_tiny_prepared
    from recdistill.config.compose import conf_root
    from recdistill.data.prepared import load_prepared
    from recdistill.teacher_outputs.build import ExportSettings, export_files, student_ranker
    from recdistill.recipes.student import train_student

    root = tmp_path_factory.mktemp("weight")
    prepared = make_tiny_prepared(root / "data" / "tiny", num_users=150, num_items=40)
    data = load_prepared(prepared)
    common = [f"prepared={prepared}", f"paths.runs_dir={root / 'runs'}", *COMMON]
    converged = train_student(compose("student", common + ["train.max_epochs=40", "train.early_stopping_patience=0",
                                                           "student.hidden_size=32", "run.name=converged"]))
    export = ExportSettings(**{**OmegaConf.to_container(OmegaConf.load(conf_root() / "export" / "default.yaml")),
                               "candidates": "all", "top_k": 3, "shard_rows": 500, "progress_bar": False})
    export_files(export, student_ranker([converged.artefacts["best_checkpoint"]], data, True, "cpu"), data,
                 root / "converged_outputs")
    export_files(export, RandomTeacher(data.num_items), data, root / "random_outputs")
    return {"root": root, "common": common, "converged": converged.metrics}


def _auto(setting, outputs: str, name: str):
    from recdistill.recipes.distill import train_distill

    return train_distill(compose("distill", setting["common"] + [
        f"distill.teacher_outputs={setting['root'] / outputs}", "distill.kd.weight=auto", "train.max_epochs=4",
        "distill.ed.gamma=0",
        "train.early_stopping_patience=0", f"run.name={name}", "distill.auto.kd_weights=[0,0.8,2.0]"]))


def test_a_random_teacher_gets_weight_zero(setting):
    result = _auto(setting, "random_outputs", "random")
    selection = result.info["weight_selection"]
    assert selection["grid"] == [[0.0, 0.0], [0.8, 0.0], [2.0, 0.0]] and selection["chosen_weight"] == 0.0
    zero = next(a for a in selection["curve"] if a["weight"] == 0.0)
    assert result.metrics["val/ndcg@10"] == pytest.approx(zero["val_ndcg@10"])
    saved = json.loads((result.run_dir / "weight_selection.json").read_text())
    assert saved["chosen_weight"] == 0.0
    metrics = json.loads((result.run_dir / "metrics.json").read_text())
    assert (metrics.get("metrics") or metrics)["kd_weight_chosen"] == 0.0


def test_a_converged_teacher_gets_a_positive_weight_and_the_report_says_so(setting, tmp_path):
    from recdistill.report.page import render_report

    result = _auto(setting, "converged_outputs", "converged")
    selection = result.info["weight_selection"]
    assert selection["chosen_weight"] > 0
    best = max(a["val_ndcg@10"] for a in selection["curve"])
    assert result.metrics["val/ndcg@10"] == pytest.approx(best)
    files = render_report([result.run_dir], tmp_path / "report")
    text = files.markdown.read_text() if hasattr(files, "markdown") else (tmp_path / "report" / "report.md").read_text()
    assert "the weight chosen on validation" in text
    assert f"Validation chose kd.weight={selection['chosen_weight']:g}, ed.gamma=0" in text


def test_choice_rule_and_grid_checks():
    curve = [{"weight": 0.0, "val_ndcg@10": 0.5}, {"weight": 0.8, "val_ndcg@10": 0.5000001}, {"weight": 2.0, "val_ndcg@10": 0.4}]
    assert choose(curve)["weight"] == 0.0                     # a tie (to 6 decimals) goes to the smaller weight
    curve[1]["val_ndcg@10"] = 0.51
    assert choose(curve)["weight"] == 0.8
    with pytest.raises(ConfigError, match="must include 0"):
        weight_grid(compose("distill", ["distill.kd.weight=auto", "distill.auto.kd_weights=[0.2,0.8]"]))
    with pytest.raises(ConfigError, match="numbers >= 0"):
        weight_grid(compose("distill", ["distill.kd.weight=auto", "distill.auto.kd_weights=[0,-1]"]))
    both = compose("distill", ["distill.kd.weight=auto", "distill.ed.gamma=auto", "distill.auto.kd_weights=[0,0.8]"])
    assert weight_grid(both) == [(0.0, 0.0), (0.0, 0.2), (0.8, 0.0), (0.8, 0.2)]   # (0, 0): the student alone
    assert weight_grid(compose("distill", ["distill.ed.gamma=auto"])) == [(0.8, 0.0), (0.8, 0.2)]


def test_stop_when_behind_stops_only_a_losing_arm():
    from recdistill.recipes.distill_weight import StopWhenBehind

    class Trainer:
        sanity_checking = False
        should_stop = False

        def __init__(self, epoch, value):
            self.current_epoch, self.callback_metrics = epoch, {"val/ndcg@10": torch.tensor(value)}

    stopper = StopWhenBehind([0.2, 0.4, 0.5, 0.5], after=3, behind=0.1)
    early = Trainer(1, 0.1)
    stopper.on_validation_epoch_end(early, None)
    assert not early.should_stop                               # before after_epochs nothing stops
    close = Trainer(2, 0.46)
    stopper.on_validation_epoch_end(close, None)
    assert not close.should_stop                               # within 10 % of the best so far
    behind = Trainer(3, 0.3)
    stopper.on_validation_epoch_end(behind, None)
    assert behind.should_stop and stopper.stopped_at == 3


def test_teacher_check_before_distilling_is_in_the_manifest_and_the_report(setting, tmp_path):
    """`export` scores the teacher and the student on the same validation candidates; a converged teacher is
    ahead of a one-epoch student, a random teacher at chance; the distilled run's report says so first."""
    from recdistill.data.prepared import load_prepared
    from recdistill.evaluation.teacher_check import sentence, teacher_check
    from recdistill.recipes.distill import train_distill
    from recdistill.recipes.export import run_export
    from recdistill.recipes.student import train_student
    from recdistill.report.page import render_report

    common = setting["common"]
    weak = train_student(compose("student", common + ["train.max_epochs=1", "run.name=weak"]))
    converged = next((setting["root"] / "runs").glob("*_converged")) / "checkpoints"
    converged_ckpt = next(p for p in converged.glob("student-*.ckpt"))
    result = run_export(compose("export", [f"prepared={common[0].split('=', 1)[1]}", "teacher=student",
                                           f"teacher.checkpoint={converged_ckpt}",
                                           f"export.student_checkpoint={weak.artefacts['best_checkpoint']}",
                                           "export.num_candidates=10", "export.top_k=3", "export.positions=last",
                                           "export.progress_bar=false", "teacher_check_users=100",
                                           f"export.out_dir={tmp_path / 'outputs'}"]))
    check = result.manifest["teacher_check"]
    assert check["users"] == 100 and check["candidates"] == 20
    assert check["teacher"]["all"]["ndcg@10"] > check["student"]["all"]["ndcg@10"]
    assert check["teacher_minus_student"]["ci95_low"] > 0 and "has something to teach" in sentence(check)
    data = load_prepared(common[0].split("=", 1)[1])
    random_check = teacher_check(RandomTeacher(data.num_items), data, 100)
    assert abs(random_check["teacher"]["all"]["ndcg@10"] - random_check["chance_ndcg@10"]) < 0.12
    distilled = train_distill(compose("distill", common + [f"distill.teacher_outputs={tmp_path / 'outputs'}",
                                                           "train.max_epochs=1", "run.name=checked"]))
    text = render_report([distilled.run_dir], tmp_path / "report").markdown.read_text()
    assert "**Teacher check**" in text and "has something to teach" in text


def test_the_student_alone_is_an_arm_and_wins_against_a_random_teacher(setting, tmp_path):
    """With distill.auto.student_run (what the pipeline passes), the student run is the arm "student alone":
    the (0, 0) distillation arm is not trained, and when validation keeps the student the result is a run of
    its own that points at the student's checkpoint, so the distilled student is never below it on validation."""
    from recdistill.recipes.distill import train_distill
    from recdistill.recipes.student import train_student
    from recdistill.report.page import render_report

    base = setting["common"] + ["train.max_epochs=4", "train.early_stopping_patience=0"]
    student = train_student(compose("student", base + ["run.name=alone"]))
    result = train_distill(compose("distill", base + [
        f"distill.teacher_outputs={setting['root'] / 'random_outputs'}", "distill.kd.weight=auto",
        "distill.ed.gamma=0", "run.name=with-student", "distill.auto.kd_weights=[0,2.0]",
        f"distill.auto.student_run={student.run_dir}"]))
    selection = result.info["weight_selection"]
    arms = [a.get("arm", "distilled") for a in selection["curve"]]
    assert arms == ["student alone", "distilled"] and [a["weight"] for a in selection["curve"]] == [0.0, 2.0]
    best = max(a["val_ndcg@10"] for a in selection["curve"])
    assert result.metrics["val/ndcg@10"] == pytest.approx(best)
    assert result.metrics["val/ndcg@10"] >= student.metrics["val/ndcg@10"] - 1e-9
    if selection["chosen_arm"] == "student alone":
        assert result.artefacts["best_checkpoint"] == student.artefacts["best_checkpoint"]
        assert result.metrics["test/ndcg@10"] == pytest.approx(student.metrics["test/ndcg@10"])
        assert result.run_dir != student.run_dir and (result.run_dir / "weight_selection.json").is_file()
        text = render_report([result.run_dir], tmp_path / "report").markdown.read_text()
        assert "Validation kept the student alone" in text


def test_a_kept_student_alone_is_printed_as_such(tmp_path, capsys):
    """The pipeline prints the distill stage's result; when validation kept the student alone its metrics are
    the student's (no teacher coverage) and the line says so (found by the cpu profile, seeds 0-2)."""
    from recdistill.recipes.distill import print_distilled
    from recdistill.recipes.lifecycle import RunResult

    metrics = {"val/ndcg@10": 0.12, "test/ndcg@10": 0.1, "student_alone": 1.0}
    print_distilled(RunResult(tmp_path, metrics, [], {"best_checkpoint": "student.ckpt"}, {"teacher": None}))
    assert "validation kept the student alone" in capsys.readouterr().out
