"""The distillation recipe's config reader: the ``distill`` group's ``kd``, ``ed`` and ``dros`` sections and ``base_loss_scale``
turned into :class:`~recdistill.distill.settings.DistillSettings` (checked by ``validate_distill_config``
before a run folder exists; ``distill.kd.weight`` / ``distill.ed.gamma`` are numbers here, an ``auto`` one
having been replaced by the arm's value)."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from recdistill.distill.settings import DistillSettings


def distill_settings(cfg: DictConfig) -> DistillSettings:
    d = cfg.distill
    sections = {key: OmegaConf.to_container(d[key], resolve=True) for key in ("kd", "ed", "dros")}
    return DistillSettings.from_dict({**sections, "base_loss_scale": str(d.base_loss_scale)})
