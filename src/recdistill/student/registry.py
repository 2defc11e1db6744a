"""The students by name: the ``student`` config group's option (``student=sasrec``) picks one here.

A new student is a module in ``student/`` (an :class:`~recdistill.student.item_table.ItemTableRecommender`
whose constructor takes ``num_items``, ``max_len``, ``uniform_dropout`` and its own values, a frozen settings
dataclass of those values with ``from_dict`` / ``to_dict`` that checks them, and a line
``register(StudentModel("<name>", Model, Settings))``) and a ``config/conf/student/<name>.yaml`` holding the
shared keys (``max_len``, ``loss``, ``num_negatives``, ``negatives_from_history``) and its own: two files. The
first lookup imports every module of ``student/`` (discovery, :class:`~recdistill.engine.registry.Registry`),
so nothing else names the new one. Every model is built here: training, distillation (every student has a
distilled form, ``student/distilled.py``) and the checkpoint loader.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn

from recdistill.engine.registry import Registry
from recdistill.errors import ConfigError


@dataclass(frozen=True)
class StudentModel:
    """``name``: the ``student`` group's option; ``model``: the ``nn.Module`` class; ``settings``: the dataclass
    of its own values."""

    name: str
    model: type
    settings: type

    def build(self, num_items: int, student, uniform_dropout: bool = True) -> nn.Module:
        """The model from a :class:`~recdistill.student.settings.StudentSettings` whose ``model`` is a
        ``self.settings``; ``uniform_dropout`` is ``efficiency.uniform_dropout``."""
        return self.model(num_items=num_items, max_len=student.max_len, uniform_dropout=uniform_dropout,
                          **student.model.to_dict())

    def build_distilled(self, num_items: int, student, ed, llm_embeddings, uniform_dropout: bool = True) -> nn.Module:
        """Its distilled form, with ``distill.ed``'s settings (an ``EmbeddingDistillSettings``)."""
        from recdistill.student.distilled import distilled   # distilled.py imports the models, which import this

        return distilled(self.model)(num_items, llm_embeddings=llm_embeddings, gamma=ed.gamma,
                                     mlp_layers=ed.mlp_layers, mlp_hidden=ed.mlp_hidden, normalize=ed.normalize,
                                     tie=ed.tie, id_dropout=ed.id_dropout, max_len=student.max_len,
                                     uniform_dropout=uniform_dropout, **student.model.to_dict())


_STUDENTS: Registry[StudentModel] = Registry("student", __name__.rsplit(".", 1)[0])


def register(entry: StudentModel) -> StudentModel:
    return _STUDENTS.register(entry.name, entry)


def students() -> dict[str, StudentModel]:
    """Every registered student by name."""
    return _STUDENTS.entries()


def student_model(name: str) -> StudentModel:
    known = students()
    if name not in known:
        raise ConfigError(f"student={name!r} is not a known student; choose one of: {', '.join(sorted(known))}")
    return known[name]


def build_student(num_items: int, student, uniform_dropout: bool = True) -> nn.Module:
    """The model ``student`` (a :class:`~recdistill.student.settings.StudentSettings`) names."""
    return student_model(student.name).build(num_items, student, uniform_dropout)


def build_distilled_student(num_items: int, student, ed, llm_embeddings, uniform_dropout: bool = True) -> nn.Module:
    """The student with embedding distillation (``ed``: an ``EmbeddingDistillSettings``)."""
    return student_model(student.name).build_distilled(num_items, student, ed, llm_embeddings, uniform_dropout)
