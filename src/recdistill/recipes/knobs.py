"""Every ``efficiency`` knob a command accepts takes effect in that command: a command lists the knobs it
uses, and a changed value of any other one is refused before anything runs (rather than accepted and
silently ignored, e.g. ``efficiency.scheduler`` in an evaluation, which never steps an optimizer).

Commands that read no config accept no knob at all: ``recommend``, ``export-model`` and ``serve`` take
only flags (``recipes/serve.py``); ``eval distill`` uses :data:`EVALUATION`, like ``eval student``."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from recdistill.config import compose
from recdistill.errors import ConfigError

# What an evaluation through a Lightning Trainer uses: the Trainer's device, precision and determinism,
# the seed, and the DataLoader knobs. Optimizer, schedule, compile and batch-size search have nothing to act on.
EVALUATION = ("accelerator", "devices", "strategy", "num_nodes", "precision", "matmul_precision", "deterministic",
              "seed", "num_workers", "pin_memory", "persistent_workers", "prefetch_factor")
# Searched only when train.batch_size=auto, which the student and the distilled student accept.
BATCH_SEARCH = ("batch_size_search",)


def inert_knobs(cfg: DictConfig, root: str, used: tuple[str, ...] | None = None, unused: tuple[str, ...] = ()) -> list[str]:
    """The efficiency knobs that ``cfg`` sets away from the ``root`` command's defaults but the command
    does not use: those not in ``used`` (None: all are used) or in ``unused``."""
    if "efficiency" not in cfg:
        return []
    defaults = compose(root).efficiency
    changed = []
    for key in cfg.efficiency:
        if (used is None or key in used) and key not in unused:
            continue
        value, default = cfg.efficiency[key], defaults.get(key)
        if OmegaConf.is_config(value):
            value, default = OmegaConf.to_container(value), OmegaConf.to_container(default)
        if value != default:
            changed.append(key)
    return changed


def check_knobs_take_effect(cfg: DictConfig, root: str, command: str, used: tuple[str, ...] | None = None,
                            unused: tuple[str, ...] = ()) -> None:
    """Refuse, naming them, the efficiency knobs ``cfg`` changes that ``recdistill <command>`` would ignore."""
    inert = inert_knobs(cfg, root, used, unused)
    if inert:
        names = ", ".join(f"efficiency.{k}" for k in inert)
        uses = "every efficiency setting but " + ", ".join(unused) if used is None else (", ".join(used) or "none")
        raise ConfigError(f"{names} has no effect in `recdistill {command}`; remove it (efficiency settings it "
                          f"uses: {uses})")
