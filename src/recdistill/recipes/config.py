"""Compose a workload's config: the one place the best settings of ``recdistill bench --apply-best`` are
merged, for the command line and the pipeline alike.

Order: the YAML defaults, then the best-settings file ``recdistill.<workload>.yaml`` (see
:mod:`recdistill.bench.applied`), then ``--config`` files, then ``key=value`` overrides, so anything
given explicitly still wins.
"""

from __future__ import annotations

import sys
from typing import Iterable

from omegaconf import DictConfig

from recdistill.bench.applied import NO_APPLIED_CONFIG_ENV, applied_config_files
from recdistill.config import compose

# Workloads whose runs pick up `bench --apply-best` settings: the config roots the bench workloads sweep.
TUNED_WORKLOADS = ("student", "teacher", "distill", "lm")


def load_config(root: str, overrides: Iterable[str] = (), files: Iterable[str] = (), applied: bool = False,
                announce: bool = True) -> DictConfig:
    """``compose(root, overrides, files)``, with the workload's best-settings file first among the files
    when ``applied`` (training runs; evaluations keep the settings they are given)."""
    files = [str(f) for f in files]
    if applied and root in TUNED_WORKLOADS:
        best = [str(p) for p in applied_config_files(root)]
        if best and announce:
            for path in best:
                print(f"using best settings from {path} (written by recdistill bench --apply-best; "
                      f"set {NO_APPLIED_CONFIG_ENV}=1 to ignore)", file=sys.stderr)
        files = [*best, *files]
    return compose(root, list(overrides), files)
