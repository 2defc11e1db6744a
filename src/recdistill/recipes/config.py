"""Compose a workload's config: the one place the best settings of ``recdistill bench --apply-best`` are
merged, and the one place a resumed run gets its settings back, for the command line and the pipeline.

Order: the YAML defaults, then the best-settings file ``recdistill.<workload>.yaml`` (see
:mod:`recdistill.sweeps.applied`), then ``--config`` files, then ``key=value`` overrides, so anything
given explicitly still wins. With ``train.resume=<run folder>`` the run's own ``config.yaml`` takes the
place of the best-settings file, and only the keys in ``RESUME_MAY_CHANGE`` may differ from it.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path
from typing import Iterable

from omegaconf import DictConfig, OmegaConf

from recdistill.sweeps.applied import NO_APPLIED_CONFIG_ENV, applied_config_files
from recdistill.config import compose, has_key, to_plain
from recdistill.engine.resume import resumable_run
from recdistill.errors import ConfigError

# Workloads whose runs pick up `bench --apply-best` settings: the config roots the bench workloads sweep.
TUNED_WORKLOADS = ("student", "teacher", "distill", "lm")
# What a resumed run may change: where it stops (train longer) and how it shows progress. Anything else
# would make the continued run a different run than the one its checkpoint belongs to.
RESUME_MAY_CHANGE = ("train.resume", "train.max_epochs", "train.max_steps", "run.progress_bar")


def load_config(root: str, overrides: Iterable[str] = (), files: Iterable[str] = (), applied: bool = False,
                announce: bool = True) -> DictConfig:
    """``compose(root, overrides, files)``, with the workload's best-settings file first among the files
    when ``applied`` (training runs; evaluations keep the settings they are given)."""
    files, overrides = [str(f) for f in files], list(overrides)
    cfg = compose(root, overrides, files)
    if has_key(cfg, "train.resume") and cfg.train.resume:
        return resumed_config(root, str(cfg.train.resume), overrides, files)
    if applied and root in TUNED_WORKLOADS:
        best = [str(p) for p in applied_config_files(root)]
        if best and announce:
            for path in best:
                print(f"using best settings from {path} (written by recdistill bench --apply-best; "
                      f"set {NO_APPLIED_CONFIG_ENV}=1 to ignore)", file=sys.stderr)
        if best:
            cfg = compose(root, overrides, [*best, *files])
    return cfg


def _flat(tree, prefix: str = "") -> dict:
    if not isinstance(tree, dict):
        return {prefix[:-1]: tree}
    out: dict = {}
    for key, value in tree.items():
        out.update(_flat(value, f"{prefix}{key}."))
    return out


def resumed_config(root: str, folder: str, overrides: list[str], files: list[str]) -> DictConfig:
    """The config of the run in ``folder`` (its ``config.yaml``, group choices included), with this
    command's ``--config`` files and overrides on top; refused when they change anything but
    ``RESUME_MAY_CHANGE``."""
    run = resumable_run(folder)
    saved = OmegaConf.to_container(OmegaConf.load(run / "config.yaml"), resolve=False)
    choices = saved.pop("choices", {}) or {}
    saved.get("train", {}).pop("resume", None)
    with tempfile.TemporaryDirectory() as tmp:
        saved_file = Path(tmp) / "run-config.yaml"
        saved_file.write_text(OmegaConf.to_yaml(OmegaConf.create(saved)))
        cfg = compose(root, [*(f"{g}={o}" for g, o in choices.items()), *overrides, f"train.resume={run}"],
                      [saved_file, *files])
    before, after = _flat(saved), _flat({k: v for k, v in to_plain(cfg).items() if k != "choices"})
    changed = sorted(k for k in set(before) | set(after)
                     if before.get(k) != after.get(k) and k not in RESUME_MAY_CHANGE)
    if changed or choices != dict(cfg.choices):
        what = ", ".join(f"{k}={after.get(k)!r} (the run has {before.get(k)!r})" for k in changed[:3])
        what = what or "a config group"
        raise ConfigError(f"train.resume={folder}: a resumed run keeps its own settings, but this command changes "
                          f"{what}; only {', '.join(RESUME_MAY_CHANGE[1:])} may change")
    return cfg
