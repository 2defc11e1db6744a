"""AdamW and learning-rate schedules from config."""

from __future__ import annotations

import math

import torch

from recdistill.engine.settings import Efficiency, OptimizerSettings
from recdistill.errors import ConfigError

SCHEDULERS = ("cosine", "onecycle", "constant")


def _use_fused(setting, params: list[torch.nn.Parameter]) -> bool:
    if setting == "auto":
        return bool(params) and all(p.is_cuda for p in params)
    return bool(setting)


def build_optimizer(
    module: torch.nn.Module,
    lr: float,
    weight_decay: float = 0.0,
    betas=(0.9, 0.999),
    fused="auto",
) -> torch.optim.AdamW:
    """AdamW over the trainable parameters; weight decay only on matrices (not biases, norms).

    ``fused`` (``auto`` | true | false): the single-kernel AdamW. ``auto`` turns it on when every
    parameter lives on a CUDA device.
    """
    trainable = [(n, p) for n, p in module.named_parameters() if p.requires_grad]
    if not trainable:
        raise ConfigError("the model has no trainable parameters")
    decay = [p for n, p in trainable if p.dim() >= 2]
    no_decay = [p for n, p in trainable if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    groups = [g for g in groups if g["params"]]
    params = [p for _, p in trainable]
    use_fused = _use_fused(fused, params)
    return torch.optim.AdamW(groups, lr=lr, betas=tuple(betas), fused=use_fused)


def build_scheduler(
    optimizer: torch.optim.Optimizer,
    kind: str,
    total_steps: int,
    warmup_ratio: float = 0.0,
    min_lr_ratio: float = 0.0,
    max_lr: float | None = None,
    warmup_start_ratio: float | None = None,
):
    """A per-step schedule: ``cosine`` (linear warmup, cosine decay to ``min_lr_ratio``), ``onecycle``
    (torch's OneCycleLR) or ``constant`` (linear warmup, then flat). The warmup climbs from lr / warmup
    steps; with ``warmup_start_ratio`` it starts at that share of lr instead (iLoRA / LAVIS: 8e-6 of 8e-4)."""
    if kind not in SCHEDULERS:
        raise ConfigError(f"efficiency.scheduler={kind!r} is not valid; choose one of: {', '.join(SCHEDULERS)}")
    total_steps = max(1, int(total_steps))
    warmup = int(round(warmup_ratio * total_steps))
    if kind == "onecycle":
        lr = max_lr if max_lr is not None else optimizer.param_groups[0]["lr"]
        pct = warmup_ratio if warmup_ratio > 0 else 0.3
        return torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=lr, total_steps=total_steps, pct_start=pct)

    def factor(step: int) -> float:
        if warmup > 0 and step < warmup:
            if warmup_start_ratio is not None:
                return warmup_start_ratio + (1.0 - warmup_start_ratio) * step / warmup
            return (step + 1) / warmup
        if kind == "constant":
            return 1.0
        progress = min(1.0, (step - warmup) / max(1, total_steps - warmup))
        return min_lr_ratio + (1.0 - min_lr_ratio) * 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def configure_optimizers(lightning_module, optim: OptimizerSettings, eff: Efficiency,
                         model: torch.nn.Module | None = None):
    """The body of ``LightningModule.configure_optimizers`` for every workload.

    Total optimizer steps come from ``trainer.estimated_stepping_batches`` (which already divides by
    gradient accumulation), so the schedule spans the real run.
    """
    model = model if model is not None else lightning_module
    optimizer = build_optimizer(
        model,
        lr=float(optim.lr),
        weight_decay=float(optim.weight_decay),
        betas=tuple(optim.betas),
        fused=eff.fused_adamw,
    )
    total = lightning_module.trainer.estimated_stepping_batches
    if total is None or not math.isfinite(total):
        total = 1000
    scheduler = build_scheduler(
        optimizer, str(eff.scheduler), int(total), float(eff.warmup_ratio), float(eff.min_lr_ratio),
        warmup_start_ratio=eff.warmup_start_ratio
    )
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
