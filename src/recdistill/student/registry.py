"""The students by name: the ``student`` config group's option (``student=sasrec``) picks one here.

A new student is a module in ``student/`` (the ``nn.Module``, a frozen settings dataclass of its own values
with ``from_dict`` / ``to_dict`` that checks them, and a builder), a ``config/conf/student/<name>.yaml``
holding the shared keys (``max_len``, ``loss``, ``num_negatives``, ``negatives_from_history``) and its own,
and one entry in :data:`STUDENTS`. Every model is built here: training, distillation and the checkpoint
loader. A student takes part in embedding distillation when its entry has ``build_distilled``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

from torch import nn

from recdistill.errors import ConfigError
from recdistill.student.distilled import build_distilled_sasrec
from recdistill.student.sasrec import SASRecSettings, build_sasrec


@dataclass(frozen=True)
class StudentModel:
    """``settings``: the dataclass of the model's own values; ``build(num_items, student_settings,
    uniform_dropout)``; ``build_distilled(num_items, student_settings, ed_settings, llm_embeddings,
    uniform_dropout)`` or ``None`` when the model has no embedding-distillation form."""

    settings: type
    build: Callable[..., nn.Module]
    build_distilled: Callable[..., nn.Module] | None = None


STUDENTS: dict[str, StudentModel] = {
    "sasrec": StudentModel(SASRecSettings, build_sasrec, build_distilled_sasrec),
}


def student_model(name: str) -> StudentModel:
    if name not in STUDENTS:
        raise ConfigError(f"student={name!r} is not a known student; choose one of: {', '.join(sorted(STUDENTS))}")
    return STUDENTS[name]


def build_student(num_items: int, student, uniform_dropout: bool = True) -> nn.Module:
    """The model ``student`` (a :class:`~recdistill.student.settings.StudentSettings`) names."""
    return student_model(student.name).build(num_items, student, uniform_dropout)


def build_distilled_student(num_items: int, student, ed, llm_embeddings, uniform_dropout: bool = True) -> nn.Module:
    """The student with embedding distillation (``ed``: an ``EmbeddingDistillSettings``)."""
    entry = student_model(student.name)
    if entry.build_distilled is None:
        raise ConfigError(f"student={student.name} has no embedding-distillation form; `train distill` needs a "
                          f"student that has one: {', '.join(n for n, s in STUDENTS.items() if s.build_distilled)}")
    return entry.build_distilled(num_items, student, ed, llm_embeddings, uniform_dropout)
