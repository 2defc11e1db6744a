"""The student's and distillation's settings: read from the config once, through to_dict / from_dict
unchanged, saved in checkpoints (the model is rebuilt from them); the student registry."""

import pytest
import torch
from omegaconf import OmegaConf

from recdistill.config import compose
from recdistill.distill.settings import DistillSettings
from recdistill.errors import ConfigError
from recdistill.recipes.distill_settings import distill_settings
from recdistill.recipes.student_settings import ranking_eval_settings, student_settings
from recdistill.student.checkpoint import load_recommender
from recdistill.student.distilled import DistilledSASRec
from recdistill.student.registry import build_distilled_student, build_student, students
from recdistill.student.sasrec import SASRec
from recdistill.student.settings import RankingEvalSettings, StudentSettings


def distill_cfg(*overrides):
    return compose("distill", ["distill.teacher_outputs=unused", "student.hidden_size=16", "distill.kd.top_k=3",
                               *overrides])


def test_settings_round_trip_through_to_dict_and_keep_the_groups_shape():
    cfg = distill_cfg("distill.dros.enabled=true", "distill.ed.tie=untied")
    student, distill, evaluation = student_settings(cfg), distill_settings(cfg), ranking_eval_settings(cfg)
    assert StudentSettings.from_dict(student.to_dict()) == student
    assert DistillSettings.from_dict(distill.to_dict()) == distill
    assert RankingEvalSettings.from_dict(evaluation.to_dict()) == evaluation
    # a checkpoint written before the settings existed holds these same values in its config
    assert student.to_dict() == {"name": "sasrec", **OmegaConf.to_container(cfg.student)}
    sections = {key: OmegaConf.to_container(cfg.distill[key]) for key in ("kd", "ed", "dros")}
    # the kd keys the recipe alone reads for the data (which negatives, which confidences)
    recipe_keys = {"negatives_avoid", "confidence"}
    sections["kd"] = {key: value for key, value in sections["kd"].items() if key not in recipe_keys}
    assert distill.to_dict() == {**sections, "base_loss_scale": cfg.distill.base_loss_scale}
    assert distill.kd.top_k == 3 and distill.kd.lambda_ == 1.0 and distill.dros.enabled and distill.ed.tie == "untied"


def test_the_registry_builds_the_configured_student():
    cfg = distill_cfg("student.num_blocks=1", "distill.ed.gamma=0.5")
    student = student_settings(cfg)
    assert student.name == str(cfg.choices.student) == "sasrec" and "sasrec" in students()
    model = build_student(12, student)
    assert type(model) is SASRec and model.config["hidden_size"] == 16 and model.config["num_blocks"] == 1
    distilled = build_distilled_student(12, student, distill_settings(cfg).ed, torch.randn(13, 4))
    assert isinstance(distilled, DistilledSASRec) and distilled.gamma == 0.5 and distilled.uses_llm


def test_an_unknown_student_is_a_clear_error_listing_the_known_ones():
    values = {**student_settings(distill_cfg()).to_dict(), "name": "bert4rec"}
    with pytest.raises(ConfigError, match=r"student='bert4rec' is not a known student; choose one of: caser, gru4rec, sasrec"):
        StudentSettings.from_dict(values)


def test_a_bad_model_value_names_its_key():
    with pytest.raises(ConfigError, match=r"student.hidden_size=16 must be divisible by student.num_heads=3"):
        student_settings(distill_cfg("student.num_heads=3"))
    with pytest.raises(ConfigError, match=r"student.num_blocks=0 is not valid"):
        student_settings(distill_cfg("student.num_blocks=0"))


def test_checkpoints_save_the_settings_and_the_model_is_rebuilt_from_them(tiny_recommenders, tmp_path):
    for kind in ("student", "distill"):
        ckpt = torch.load(tiny_recommenders[kind], map_location="cpu", weights_only=True)
        hp = ckpt["hyper_parameters"]
        assert hp["student"]["name"] == "sasrec" and hp["student"]["hidden_size"] == 16
        assert ("distill" in hp) == (kind == "distill")
        # the run's config is kept (eval student rebuilds the run from it) but the model comes from the settings
        hp["cfg"]["student"]["hidden_size"] = 999
        changed = tmp_path / f"{kind}.ckpt"
        torch.save(ckpt, changed)
        rec = load_recommender(changed, expect_kind=kind)
        assert rec.model.config["hidden_size"] == 16
        assert isinstance(rec.model, DistilledSASRec) == (kind == "distill")
