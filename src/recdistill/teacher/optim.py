"""The teacher's optimizer: AdamW (or iLoRA's Adam with coupled L2, ``train.weight_decay_form=coupled``) with
iLoRA's three parameter groups.

iLoRA trains the projector at the learning rate with weight decay 1e-5, the router (gate) at 0.3 x the
learning rate with the same decay, and the LoRA experts at the learning rate without decay. The schedule
(warmup, cosine) scales every group by the same factor, so the gate stays at its share of the rate.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from recdistill.errors import ConfigError

DECAY_FORMS = ("decoupled", "coupled")


@dataclass
class TeacherOptimSettings:
    """The teacher's ``train`` group (defaults: ``config/conf/train/teacher.yaml``) and
    ``efficiency.fused_adamw``, read by ``recipes.teacher_settings.teacher_optim_settings``; checked here once."""

    lr: float
    weight_decay: float                # on the LoRA matrices
    bridge_weight_decay: float         # on the projector and the gate
    router_lr_scale: float             # the gate's learning rate = lr x this
    betas: tuple[float, float]
    fused: bool | str                  # auto = fused when every parameter is on CUDA
    weight_decay_form: str             # decoupled (AdamW) | coupled (Adam, L2 in the gradient: iLoRA's)

    def __post_init__(self):
        if self.weight_decay_form not in DECAY_FORMS:
            raise ConfigError(f"train.weight_decay_form={self.weight_decay_form!r} is not valid; choose one of: "
                              f"{', '.join(DECAY_FORMS)}")
        for name in ("lr", "router_lr_scale"):
            if not float(getattr(self, name)) > 0:
                raise ConfigError(f"train.{name}={getattr(self, name)} is not valid; expected > 0")
        for name in ("weight_decay", "bridge_weight_decay"):
            if float(getattr(self, name)) < 0:
                raise ConfigError(f"train.{name}={getattr(self, name)} is not valid; expected >= 0")


def param_groups(teacher, s: TeacherOptimSettings) -> list[dict]:
    """``lora`` (every other trained tensor), ``projector`` and ``gate`` groups, each named, empty ones left out."""
    projector = [p for p in teacher.projector.parameters() if p.requires_grad]
    gate = [p for p in teacher.gate.parameters() if p.requires_grad] if teacher.gate is not None else []
    bridge = {id(p) for p in projector + gate}
    lora = [p for p in teacher.parameters() if p.requires_grad and id(p) not in bridge]
    groups = [{"name": "lora", "params": lora, "lr": s.lr, "weight_decay": s.weight_decay},
              {"name": "projector", "params": projector, "lr": s.lr, "weight_decay": s.bridge_weight_decay},
              {"name": "gate", "params": gate, "lr": s.lr * s.router_lr_scale, "weight_decay": s.bridge_weight_decay}]
    return [g for g in groups if g["params"]]


def build_teacher_optimizer(teacher, s: TeacherOptimSettings) -> torch.optim.Optimizer:
    groups = param_groups(teacher, s)
    if not groups:
        raise ConfigError("the teacher has no trainable parameters")
    params = [p for g in groups for p in g["params"]]
    fused = all(p.is_cuda for p in params) if s.fused == "auto" else bool(s.fused)
    adam = torch.optim.Adam if s.weight_decay_form == "coupled" else torch.optim.AdamW
    return adam(groups, lr=s.lr, betas=tuple(s.betas), fused=fused)
