"""The student recipe's config readers: the ``student`` group (its option names the model in
``student/registry.py``) and the ``eval`` values the student's evaluation reads, turned into the settings
the student's parts take (``StudentSettings``, ``RankingEvalSettings``). Shared by ``recipes/student.py``
and ``recipes/distill.py``; checked by ``validate_student_config`` before a run folder exists."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from recdistill.errors import ConfigError
from recdistill.student.settings import RankingEvalSettings, StudentSettings


def student_choice(cfg: DictConfig) -> str:
    """The ``student`` group's option (``student=sasrec``), as ``compose`` records it under ``choices``."""
    choice = OmegaConf.select(cfg, "choices.student")
    if choice is None:
        raise ConfigError("the config records no `student` group option (choices.student); compose it with "
                          "recdistill.config.compose, which records it")
    return str(choice)


def student_settings(cfg: DictConfig) -> StudentSettings:
    """The ``student`` group; an unknown student, or a bad value of the model's own, is a ``ConfigError``."""
    return StudentSettings.from_dict({"name": student_choice(cfg), **OmegaConf.to_container(cfg.student, resolve=True)})


def ranking_eval_settings(cfg: DictConfig) -> RankingEvalSettings:
    return RankingEvalSettings.from_dict(OmegaConf.to_container(cfg.eval, resolve=True))
