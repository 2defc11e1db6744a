"""Each teacher setting has one default (the YAML's) and one check, run before anything is loaded or a
run folder exists."""

from __future__ import annotations

import dataclasses

import pytest

from recdistill.config import compose
from recdistill.engine.batch_size import SearchSettings
from recdistill.errors import ConfigError
from recdistill.recipes.lifecycle import seed_run
from recdistill.recipes.teacher import evaluate_teacher, train_teacher
from recdistill.recipes.teacher_settings import validate_teacher_config
from recdistill.teacher.candidate_protocol import CandidateProtocolSettings
from recdistill.teacher.curriculum import Curriculum
from recdistill.teacher.data import PromptSettings
from recdistill.teacher.evaluation import TeacherEvalSettings
from recdistill.teacher.model import TeacherSpec
from recdistill.teacher.molora import MoLoRAConfig
from recdistill.teacher.optim import TeacherOptimSettings

MIRRORS = (MoLoRAConfig, TeacherSpec, PromptSettings, TeacherOptimSettings, Curriculum, TeacherEvalSettings,
           CandidateProtocolSettings, SearchSettings)


@pytest.mark.parametrize("cls", MIRRORS, ids=lambda c: c.__name__)
def test_settings_that_mirror_the_config_have_no_defaults_of_their_own(cls):
    defaulted = [f.name for f in dataclasses.fields(cls)
                 if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING]
    assert defaulted == []


@pytest.mark.parametrize("override, named", [
    ("teacher.lora.num_experts=3", "teacher.lora.num_experts=3"),   # r=8 is no multiple of 3
    ("teacher.lora.alpha=0", "teacher.lora.alpha"),
    ("teacher.lora.scaling=sqrt", "teacher.lora.scaling"),
    ("teacher.lora.top_layers=0", "teacher.lora.top_layers"),
    ("teacher.gate=mlp", "teacher.gate"),
    ("teacher.gate_window=0", "teacher.gate_window"),
    ("teacher.curriculum=linear", "teacher.curriculum"),
    ("teacher.curriculum_ramp=0", "teacher.curriculum_ramp"),
    ("teacher.prompt.history_items=0", "teacher.prompt.history_items"),
    ("teacher.prompt.max_tokens=0", "teacher.prompt.max_tokens"),
    ("teacher.eval.method=beam", "teacher.eval.method"),
    ("teacher.eval.score_norm=max", "teacher.eval.score_norm"),
    ("teacher.eval.candidate_batch_size=0", "teacher.eval.candidate_batch_size"),
    ("teacher.eval.max_new_tokens=0", "teacher.eval.max_new_tokens"),
    ("train.lr=0", "train.lr"),
    ("train.router_lr_scale=0", "train.router_lr_scale"),
])
def test_each_bad_value_is_refused_once_by_the_recipe_naming_its_key(override, named):
    with pytest.raises(ConfigError, match=named.replace(".", r"\.")):
        validate_teacher_config(compose("teacher", [override]))


def test_a_bad_precision_is_refused_before_data_or_a_run_folder(tmp_path):
    with pytest.raises(ConfigError, match=r"efficiency\.precision='fp8' is not valid"):
        seed_run(compose("student", ["efficiency.precision=fp8"]))
    runs = tmp_path / "runs"
    cfg = compose("teacher", ["efficiency.precision=fp8", "teacher.student_checkpoint=missing.ckpt",
                              f"paths.runs_dir={runs}", f"paths.data_dir={tmp_path / 'data'}"])
    with pytest.raises(ConfigError, match=r"efficiency\.precision"):
        train_teacher(cfg)
    assert not runs.exists() or not any(runs.iterdir())


def test_eval_teacher_checks_its_settings_before_loading_the_adapter(tmp_path):
    cfg = compose("teacher", ["teacher.eval.method=beam", f"paths.runs_dir={tmp_path / 'runs'}"])
    with pytest.raises(ConfigError, match=r"teacher\.eval\.method"):
        evaluate_teacher(cfg, tmp_path / "no-adapter")
    assert not (tmp_path / "runs").exists() or not any((tmp_path / "runs").iterdir())
