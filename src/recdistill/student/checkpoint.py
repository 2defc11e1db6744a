"""The one loader for every recommender checkpoint the toolkit writes.

``recdistill train student`` and ``recdistill train distill`` both save a Lightning checkpoint whose
``model.*`` keys are the student model's and whose hyper-parameters hold the student's settings
(``student``: ``StudentSettings.to_dict()``, and for a distilled student ``distill``:
``DistillSettings.to_dict()``), which the model is rebuilt from through ``student/registry.py``, the run's
resolved config (``cfg``: what ``eval student`` rebuilds the run from), the catalogue size and the
dataset's name, fingerprint and folder; checkpoints written before the settings were saved (0.1.0) are
rebuilt from their ``cfg``. A distilled student's SASRec is a
:class:`~recdistill.student.distilled.DistilledSASRec`: with embedding distillation on it also holds the
LLM item embeddings (a buffer) and their projection. :func:`load_recommender` reads the checkpoint
(``weights_only``: no code runs from the file), says which kind it is, rebuilds the right model and, given
the prepared data it is meant for, checks that it belongs to it (``PreparedData.check_matches``).
Everything that uses a trained recommender (evaluation, the teacher's frozen student, export, recommend,
ONNX export, the HTTP service) loads it here.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

import torch
from torch import nn

from recdistill.engine.checkpoint_files import read_checkpoint_file
from recdistill.errors import ConfigError, RecdistillError
from recdistill.student.registry import build_distilled_student, build_student
from recdistill.student.sasrec import SASRec
from recdistill.student.settings import EmbeddingDistillSettings, StudentSettings

KINDS = ("student", "distill")
KIND_NAMES = {"student": "student (`recdistill train student`)",
              "distill": "distilled student (`recdistill train distill`)"}


@dataclass
class Recommender:
    """A trained recommender on the CPU, in eval mode, and what its checkpoint says about it."""

    model: SASRec
    kind: str                           # "student" | "distill"
    num_items: int
    dataset: str | None
    dataset_fingerprint: str | None
    path: str
    epoch: int | None = None
    global_step: int | None = None
    cfg: dict = field(default_factory=dict)  # the training run's resolved config
    dataset_path: str | None = None          # the prepared dataset folder it was trained on, as recorded

    @property
    def model_config(self) -> dict:
        return dict(self.model.config)

    def meta(self) -> dict:
        """The plain-dict metadata ``load_student`` returns."""
        return {"num_items": self.num_items, "dataset": self.dataset, "dataset_fingerprint": self.dataset_fingerprint,
                "model_config": self.model_config, "epoch": self.epoch, "global_step": self.global_step,
                "cfg": self.cfg, "path": self.path, "kind": self.kind}

    def check_dataset(self, data, what: str | None = None) -> None:
        """A clear error when it was trained on another dataset than ``data`` (a ``PreparedData``)."""
        what = what or ("distilled student checkpoint" if self.kind == "distill" else "student checkpoint")
        data.check_matches(f"the {what} {self.path}", self.dataset_fingerprint, self.num_items)


def read_checkpoint(path: str | Path) -> dict:
    """The checkpoint as a dict (tensors and plain containers only), or a clear error."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise RecdistillError(f"no student checkpoint (plain or distilled) at {path}; pass a .ckpt file from a "
                              "run's checkpoints/ folder")
    ckpt = read_checkpoint_file(path, "recommender checkpoint")
    hp = ckpt.get("hyper_parameters", {}) if isinstance(ckpt, dict) else {}
    if not isinstance(hp, dict) or "cfg" not in hp or "num_items" not in hp or "state_dict" not in ckpt:
        raise RecdistillError(f"{path} is not a recommender checkpoint written by `recdistill train student` "
                              "or `recdistill train distill`")
    return ckpt


def checkpoint_kind(ckpt: dict) -> str:
    """``distill`` when the run saved distillation settings (or, before they were saved, had a ``distill``
    section) or the weights hold LLM embeddings, else ``student``."""
    hp = ckpt["hyper_parameters"]
    if "distill" in hp or "distill" in hp["cfg"] or any(k.startswith("model.llm_") for k in ckpt["state_dict"]):
        return "distill"
    return "student"


def saved_settings(hp: dict, kind: str) -> tuple[StudentSettings, EmbeddingDistillSettings | None]:
    """The student's settings and, for a distilled student, ``distill.ed``'s, as the checkpoint saved them.
    A checkpoint written before the settings were saved (0.1.0) holds the same group values in its run
    config, read by the same ``from_dict``; its student is the group option it records (sasrec then)."""
    if "student" in hp:
        student = StudentSettings.from_dict(hp["student"])
        ed = EmbeddingDistillSettings.from_dict(hp["distill"]["ed"]) if kind == "distill" else None
        return student, ed
    cfg = hp["cfg"]
    name = (cfg.get("choices") or {}).get("student", "sasrec")
    student = StudentSettings.from_dict({"name": name, **cfg["student"]})
    if kind != "distill":
        return student, None
    # the ed keys added after 0.1.0 take the values that every earlier run had
    return student, EmbeddingDistillSettings.from_dict({"id_dropout": 0.0, "tie": "tied", **cfg["distill"]["ed"]})


def build_saved_model(kind: str, num_items: int, hp: dict, state: dict) -> nn.Module:
    student, ed = saved_settings(hp, kind)
    if kind == "student":
        return build_student(num_items, student, uniform_dropout=True)
    # The LLM embeddings are a buffer in the checkpoint: a placeholder of the saved shape is built here and
    # overwritten by load_state_dict (it was normalised before it was saved, hence normalize="none").
    llm = state.get("llm_embeddings")
    return build_distilled_student(num_items, student, replace(ed, normalize="none"),
                                   None if llm is None else torch.zeros_like(llm), uniform_dropout=True)


def load_recommender(path: str | Path | None, expect_kind: str | None = None, data=None,
                     what: str | None = None) -> Recommender:
    """Load a student or distilled-student checkpoint. ``expect_kind`` makes the other kind an error;
    ``data`` (a ``PreparedData``) makes a checkpoint of another dataset an error; ``what`` names the
    checkpoint in messages (e.g. ``teacher checkpoint``)."""
    if not path:
        raise ConfigError(f"no {what or 'student checkpoint'} given")
    ckpt = read_checkpoint(path)
    kind = checkpoint_kind(ckpt)
    if expect_kind is not None and kind != expect_kind:
        raise RecdistillError(f"{path} is a {KIND_NAMES[kind]} checkpoint, not a {KIND_NAMES[expect_kind]} one; "
                              f"use `recdistill eval {kind}`")
    hp = ckpt["hyper_parameters"]
    num_items = int(hp["num_items"])
    state = {k[len("model."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    model = build_saved_model(kind, num_items, hp, state)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise RecdistillError(f"{path}: the weights do not fit the {KIND_NAMES[kind]} model its config "
                              f"describes: {str(exc).splitlines()[0]}") from exc
    model.eval()
    dataset_meta = hp.get("dataset_meta") or {}
    rec = Recommender(model=model, kind=kind, num_items=num_items, dataset=dataset_meta.get("name"),
                      dataset_fingerprint=dataset_meta.get("fingerprint"), path=str(Path(path).expanduser()),
                      epoch=ckpt.get("epoch"), global_step=ckpt.get("global_step"), cfg=hp["cfg"],
                      dataset_path=dataset_meta.get("path"))
    if data is not None:
        rec.check_dataset(data, what)
    return rec


def load_student(path: str | Path) -> tuple[SASRec, dict]:
    """:func:`load_recommender` as ``(model, meta)``: the trained SASRec (student or distilled student; on
    the CPU, in eval mode) and ``meta``: ``num_items``, ``dataset`` (name), ``dataset_fingerprint``,
    ``model_config`` (the constructor's arguments), ``epoch``, ``global_step``, ``cfg`` (the run's resolved
    config, a dict), ``path``, ``kind``."""
    rec = load_recommender(path)
    return rec.model, rec.meta()


def load_student_for(path: str | Path | None, data, what: str = "student checkpoint") -> tuple[SASRec, dict]:
    """:func:`load_student` plus the check that it was trained on the prepared dataset ``data``."""
    rec = load_recommender(path, data=data, what=what)
    return rec.model, rec.meta()
