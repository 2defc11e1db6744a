"""The recipes layer's shared rules: every efficiency knob a command accepts takes effect there (or is
refused), and the best settings of `bench --apply-best` reach the pipeline as they reach the CLI."""

from __future__ import annotations

import pytest
import yaml

from recdistill.sweeps.applied import CONFIG_DIR_ENV, NO_APPLIED_CONFIG_ENV
from recdistill.cli import main
from recdistill.config import compose
from recdistill.data.prepared import load_prepared
from recdistill.pipeline.runner import compose_stage
from recdistill.recipes.knobs import EVALUATION, inert_knobs
from tests.conftest import make_tiny_prepared
from teacher_fixtures import make_student, write_student_checkpoint


@pytest.mark.parametrize("argv", [["export"], ["data", "prepare"]])
def test_commands_without_efficiency_settings_refuse_them(argv, tmp_path, capsys):
    # `recdistill export efficiency.precision=...` used to be accepted and ignored
    assert main([*argv, "efficiency.precision=bf16-mixed", f"paths.runs_dir={tmp_path}"]) == 2
    assert "efficiency" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


@pytest.mark.parametrize("argv, knob, named", [
    # train.batch_size must be a number for the teacher and the LM, so nothing is searched
    (["train", "teacher"], "efficiency.batch_size_search.start=4", "efficiency.batch_size_search"),
    (["eval", "teacher", "no-adapter"], "efficiency.scheduler=constant", "efficiency.scheduler"),  # no optimizer
    (["lm", "train"], "efficiency.batch_size_search.margin=0.2", "efficiency.batch_size_search"),
    (["lm", "eval", "no-checkpoint"], "efficiency.precision=32-true", "efficiency.precision"),  # no Trainer
])
def test_knobs_a_command_would_ignore_are_refused_before_it_runs(argv, knob, named, tmp_path, capsys):
    assert main([*argv, knob, f"paths.runs_dir={tmp_path}"]) == 2
    assert f"{named} has no effect in `recdistill {' '.join(argv[:2])}`" \
        in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_eval_student_refuses_training_knobs_and_accepts_evaluation_ones(tmp_path, capsys):
    data = load_prepared(make_tiny_prepared(tmp_path / "tiny"))
    ckpt = write_student_checkpoint(tmp_path / "student.ckpt", make_student(), data)
    runs = tmp_path / "runs"
    assert main(["eval", "student", str(ckpt), f"paths.runs_dir={runs}", "efficiency.accumulate_grad_batches=4"]) == 2
    assert "efficiency.accumulate_grad_batches has no effect in `recdistill eval student`" in capsys.readouterr().err
    assert not runs.exists()
    # every knob an evaluation uses is accepted (and changed here from its default)
    cfg = compose("student", ["efficiency.accelerator=cpu", "efficiency.precision=32-true", "efficiency.seed=1",
                              "efficiency.num_workers=1", "efficiency.deterministic=true"])
    assert inert_knobs(cfg, "student", EVALUATION) == []


def test_training_commands_use_every_knob():
    changed = compose("student", ["efficiency.accumulate_grad_batches=2", "efficiency.scheduler=constant",
                                  "efficiency.batch_size_search.start=4", "efficiency.compile=eager"])
    assert inert_knobs(changed, "student") == []


def test_best_settings_reach_the_pipeline_stage_as_they_reach_the_command(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(NO_APPLIED_CONFIG_ENV, raising=False)
    monkeypatch.delenv(CONFIG_DIR_ENV, raising=False)
    (tmp_path / "recdistill.student.yaml").write_text(yaml.safe_dump({"train": {"lr": 0.0123}}))
    assert compose_stage("student", ["train.max_epochs=1"], announce=True).train.lr == 0.0123
    assert "using best settings from recdistill.student.yaml" in capsys.readouterr().err
    assert compose_stage("student", ["train.lr=0.5"]).train.lr == 0.5             # explicit overrides still win
    assert compose_stage("teacher", []).train.lr == compose("teacher").train.lr  # other workloads untouched
