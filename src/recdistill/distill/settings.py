"""The settings distillation's parts take, as plain dataclasses: the ``distill`` group's ``kd``, ``ed`` and
``dros`` sections (``config/conf/distill/dllm2rec.yaml`` holds their defaults and what each means).

``recipes/distill_settings.py`` reads and checks them once, before a run folder exists; ``to_dict`` is
what a distilled checkpoint saves (the loader rebuilds the model from its ``ed`` part). The input files
(``distill.teacher_outputs``, ``distill.item_embeddings``) and the weight search (``distill.auto``) are the
recipe's, not the module's, so they are not here.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from recdistill.student.settings import EmbeddingDistillSettings

# L_rd is a mean over the exported positions (DLLM2Rec) or a sum over them divided by all target positions
AVERAGE_OVER = ("teacher_positions", "all_positions")


@dataclass(frozen=True)
class RankingDistillSettings:
    """``distill.kd``: importance-aware ranking distillation (``lambda_`` is the key ``lambda``)."""

    weight: float
    lambda_: float
    a_pos: float
    a_conf: float
    a_cons: float
    top_k: int | None
    consistency_k: int | None
    num_negatives: int
    average_over: str
    negative_term: str
    reliability: str   # which exported positions the data module keeps (distill/reliability.py)

    def to_dict(self) -> dict:
        values = asdict(self)
        values["lambda"] = values.pop("lambda_")
        return values

    @classmethod
    def from_dict(cls, values: dict) -> "RankingDistillSettings":
        def count(key):
            return None if values[key] is None else int(values[key])

        return cls(weight=float(values["weight"]), lambda_=float(values["lambda"]), a_pos=float(values["a_pos"]),
                   a_conf=float(values["a_conf"]), a_cons=float(values["a_cons"]), top_k=count("top_k"),
                   consistency_k=count("consistency_k"), num_negatives=int(values["num_negatives"]),
                   average_over=str(values["average_over"]),
                   # checkpoints written before these options existed used ours and distilled every position
                   negative_term=str(values.get("negative_term", "ours")),
                   reliability=str(values.get("reliability", "none")))


@dataclass(frozen=True)
class DROSSettings:
    """``distill.dros``: DROS as DLLM2Rec's code adds it."""

    enabled: bool
    alpha: float
    beta: float
    ranking_form: str

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, values: dict) -> "DROSSettings":
        return cls(enabled=bool(values["enabled"]), alpha=float(values["alpha"]), beta=float(values["beta"]),
                   ranking_form=str(values.get("ranking_form", "per_sample")))  # older checkpoints: ours


@dataclass(frozen=True)
class DistillSettings:
    """The ``distill`` group's sections the module uses, and ``base_loss_scale`` (the student's BCE averaged
    our way or DLLM2Rec's, ``distill/losses.py``'s ``sampled_bce_loss``)."""

    kd: RankingDistillSettings
    ed: EmbeddingDistillSettings
    dros: DROSSettings
    base_loss_scale: str

    def to_dict(self) -> dict:
        return {"kd": self.kd.to_dict(), "ed": self.ed.to_dict(), "dros": self.dros.to_dict(),
                "base_loss_scale": self.base_loss_scale}

    @classmethod
    def from_dict(cls, values: dict) -> "DistillSettings":
        """From :meth:`to_dict`'s shape, which is the ``distill`` group's (its other keys are not read)."""
        return cls(kd=RankingDistillSettings.from_dict(values["kd"]), ed=EmbeddingDistillSettings.from_dict(values["ed"]),
                   dros=DROSSettings.from_dict(values["dros"]),
                   base_loss_scale=str(values.get("base_loss_scale", "ours")))  # older checkpoints: ours
