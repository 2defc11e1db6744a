"""Where the best settings written by ``recdistill bench WORKLOAD --apply-best METRIC`` live, and how later
runs pick them up.

The file is ``recdistill.<workload>.yaml`` (plain ``key: value`` YAML, only the keys that differ from the
defaults) in the working directory, or in ``$RECDISTILL_CONFIG_DIR`` when that is set. The training
commands merge it like a ``--config`` file given first: after the defaults, before other ``--config``
files and ``key=value`` overrides, so anything given explicitly still wins. The merge happens in one
place, :func:`recdistill.recipes.config.load_config`, used by the command line and the pipeline alike;
it prints a line when it uses the file. Delete the file (or set ``RECDISTILL_NO_APPLIED_CONFIG=1``) to go
back to the defaults.
"""

from __future__ import annotations

import os
from pathlib import Path

CONFIG_DIR_ENV = "RECDISTILL_CONFIG_DIR"
NO_APPLIED_CONFIG_ENV = "RECDISTILL_NO_APPLIED_CONFIG"


def applied_config_path(workload: str, folder: str | os.PathLike | None = None) -> Path:
    base = Path(folder) if folder is not None else Path(os.environ.get(CONFIG_DIR_ENV) or ".")
    return base / f"recdistill.{workload}.yaml"


def applied_config_files(workload: str) -> list[Path]:
    """The best-settings file for ``workload`` if one exists and picking it up is not switched off."""
    if os.environ.get(NO_APPLIED_CONFIG_ENV):
        return []
    path = applied_config_path(workload)
    return [path] if path.is_file() else []
