"""The one loader for every recommender checkpoint the toolkit writes.

``recdistill train student`` and ``recdistill train distill`` both save a Lightning checkpoint whose
``model.*`` keys are a SASRec's and whose hyper-parameters hold the run's resolved config, the catalogue
size and the dataset's name and fingerprint. A distilled student's SASRec is a
:class:`~recdistill.distill.embedding.DistilledSASRec`: with embedding distillation on it also holds the
LLM item embeddings (a buffer) and their projection. :func:`load_recommender` reads the checkpoint
(``weights_only``: no code runs from the file), says which kind it is, rebuilds the right model and
returns it with its metadata. Everything that uses a trained recommender (evaluation, recommendations,
ONNX export, the HTTP service) loads it here.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import torch

from recdistill.errors import RecdistillError
from recdistill.student.sasrec import SASRec

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
        """The plain-dict metadata ``load_student`` has always returned, plus ``kind``."""
        return {"num_items": self.num_items, "dataset": self.dataset, "dataset_fingerprint": self.dataset_fingerprint,
                "model_config": self.model_config, "epoch": self.epoch, "global_step": self.global_step,
                "cfg": self.cfg, "path": self.path, "kind": self.kind}


def read_recommender_checkpoint(path: str | Path) -> dict:
    """The checkpoint as a dict (tensors and plain containers only), or a clear error."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise RecdistillError(f"no student checkpoint (plain or distilled) at {path}; pass a .ckpt file from a run's checkpoints/ folder")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise RecdistillError(f"cannot read {path} as a recommender checkpoint: {str(exc).splitlines()[0]}") from exc
    hp = ckpt.get("hyper_parameters", {}) if isinstance(ckpt, dict) else {}
    if not isinstance(hp, dict) or "cfg" not in hp or "num_items" not in hp or "state_dict" not in ckpt:
        raise RecdistillError(f"{path} is not a recommender checkpoint written by `recdistill train student` "
                              "or `recdistill train distill`")
    return ckpt


def checkpoint_kind(ckpt: dict) -> str:
    """``distill`` when the run had a ``distill`` section or the weights hold LLM embeddings, else ``student``."""
    cfg = ckpt["hyper_parameters"]["cfg"]
    if "distill" in cfg or any(k.startswith("model.llm_") for k in ckpt["state_dict"]):
        return "distill"
    return "student"


def _build_model(kind: str, num_items: int, cfg: dict, state: dict) -> SASRec:
    s = cfg["student"]
    sasrec = dict(max_len=int(s["max_len"]), hidden_size=int(s["hidden_size"]), num_blocks=int(s["num_blocks"]),
                  num_heads=int(s["num_heads"]), dropout=float(s["dropout"]), norm_first=bool(s["norm_first"]))
    if kind == "student":
        return SASRec(num_items=num_items, **sasrec)
    from recdistill.distill.embedding import DistilledSASRec

    ed = cfg["distill"]["ed"]
    # The LLM embeddings are a buffer in the checkpoint: a placeholder of the saved shape is built here and
    # overwritten by load_state_dict (its normalisation was applied before it was saved).
    llm = state.get("llm_embeddings")
    return DistilledSASRec(num_items, llm_embeddings=None if llm is None else torch.zeros_like(llm),
                           gamma=float(ed["gamma"]), mlp_layers=int(ed["mlp_layers"]),
                           mlp_hidden=int(ed["mlp_hidden"]), normalize="none", **sasrec)


def load_recommender(path: str | Path, expect_kind: str | None = None) -> Recommender:
    """Load a student or distilled-student checkpoint; ``expect_kind`` makes any other kind an error."""
    ckpt = read_recommender_checkpoint(path)
    kind = checkpoint_kind(ckpt)
    if expect_kind is not None and kind != expect_kind:
        raise RecdistillError(f"{path} is a {KIND_NAMES[kind]} checkpoint, not a {KIND_NAMES[expect_kind]} one; "
                              f"use `recdistill eval {kind}`")
    hp = ckpt["hyper_parameters"]
    num_items = int(hp["num_items"])
    state = {k[len("model."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    model = _build_model(kind, num_items, hp["cfg"], state)
    try:
        model.load_state_dict(state)
    except RuntimeError as exc:
        raise RecdistillError(f"{path}: the weights do not fit the {KIND_NAMES[kind]} model its config "
                              f"describes: {str(exc).splitlines()[0]}") from exc
    model.eval()
    dataset_meta = hp.get("dataset_meta") or {}
    return Recommender(model=model, kind=kind, num_items=num_items, dataset=dataset_meta.get("name"),
                       dataset_fingerprint=dataset_meta.get("fingerprint"), path=str(path),
                       epoch=ckpt.get("epoch"), global_step=ckpt.get("global_step"), cfg=hp["cfg"],
                       dataset_path=dataset_meta.get("path"))


def check_same_dataset(rec: Recommender, fingerprint: str | None, num_items: int, where: str) -> None:
    """A clear error when the recommender was trained on another dataset than the one at ``where``."""
    if rec.dataset_fingerprint and fingerprint and rec.dataset_fingerprint != fingerprint:
        raise RecdistillError(f"{rec.path} was trained on dataset {rec.dataset!r} (fingerprint "
                              f"{rec.dataset_fingerprint}), but the prepared data at {where} has fingerprint "
                              f"{fingerprint}; use the dataset it was trained on")
    if rec.num_items != int(num_items):
        raise RecdistillError(f"{rec.path} has {rec.num_items} items, the prepared data at {where} has {num_items}; "
                              "they do not belong to the same dataset")
