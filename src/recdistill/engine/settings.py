"""The settings the engine reads, as plain dataclasses: the ``efficiency`` group and the optimizer part of
the ``train`` group. A recipe builds them from the config (``Efficiency.from_dict``); they have no defaults
of their own (those live in ``config/conf/efficiency/default.yaml`` and the ``train/*.yaml`` files)."""

from __future__ import annotations

from dataclasses import dataclass, fields

from recdistill.engine.precision import PRECISIONS
from recdistill.errors import ConfigError


@dataclass(frozen=True)
class Efficiency:
    """The ``efficiency`` group, field for field (see ``config/conf/efficiency/default.yaml``)."""

    accelerator: str
    devices: int | str
    strategy: str
    num_nodes: int
    precision: str
    accumulate_grad_batches: int
    gradient_clip_val: float | None
    gradient_checkpointing: bool
    uniform_dropout: bool
    fused_adamw: bool | str
    compile: bool | str
    scheduler: str
    warmup_ratio: float
    warmup_start_ratio: float | None
    min_lr_ratio: float
    num_workers: int
    pin_memory: bool | str
    persistent_workers: bool
    prefetch_factor: int
    matmul_precision: str
    deterministic: bool
    seed: int
    measure_warmup_steps: int
    batch_size_search: dict

    def __post_init__(self):
        # The one check of the value; which precision "auto" means, and whether this machine can run the
        # one asked for, is decided where the Trainer is built (engine/precision.py).
        if str(self.precision) not in PRECISIONS:
            raise ConfigError(f"efficiency.precision={self.precision!r} is not valid; choose one of: "
                              f"{', '.join(PRECISIONS)}")
        if self.warmup_start_ratio is not None and not 0.0 <= float(self.warmup_start_ratio) <= 1.0:
            raise ConfigError(f"efficiency.warmup_start_ratio={self.warmup_start_ratio} is not valid; expected a "
                              "share of lr in [0, 1], or null for lr / warmup steps")
        if self.warmup_start_ratio is not None and (float(self.warmup_ratio) == 0 or self.scheduler == "onecycle"):
            raise ConfigError(f"efficiency.warmup_start_ratio={self.warmup_start_ratio} has no effect with "
                              f"efficiency.warmup_ratio={self.warmup_ratio} and efficiency.scheduler={self.scheduler} "
                              "(it sets where a linear warmup starts); set a warmup_ratio with the cosine or constant "
                              "scheduler, or leave it null")

    @classmethod
    def from_dict(cls, values: dict) -> "Efficiency":
        return cls(**values)


@dataclass(frozen=True)
class OptimizerSettings:
    """AdamW's settings from the ``train`` group."""

    lr: float
    weight_decay: float
    betas: tuple[float, float]

    @classmethod
    def from_dict(cls, train: dict) -> "OptimizerSettings":
        names = {f.name for f in fields(cls)}
        values = {k: v for k, v in train.items() if k in names}
        return cls(float(values["lr"]), float(values["weight_decay"]), tuple(values["betas"]))
