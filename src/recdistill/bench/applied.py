"""Where the best settings written by ``recdistill bench WORKLOAD --apply-best METRIC`` live, and how later
runs pick them up.

The file is ``recdistill.<workload>.yaml`` (plain ``key: value`` YAML, only the keys that differ from the
defaults) in the working directory, or in ``$RECDISTILL_CONFIG_DIR`` when that is set. The training
commands merge it like a ``--config`` file given first: after the defaults, before other ``--config``
files and ``key=value`` overrides, so anything given explicitly still wins. The CLI prints a line when it
uses the file; delete the file (or set ``RECDISTILL_NO_APPLIED_CONFIG=1``) to go back to the defaults.

This module is imported by the CLI on every training command, so it must stay free of heavy imports.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

CONFIG_DIR_ENV = "RECDISTILL_CONFIG_DIR"
NO_APPLIED_CONFIG_ENV = "RECDISTILL_NO_APPLIED_CONFIG"

# The command each bench workload sweeps, and so the command that picks up its best settings.
WORKLOAD_OF_COMMAND = {
    ("train", "student"): "student",
    ("train", "teacher"): "teacher",
    ("train", "distill"): "distill",
    ("lm", "train"): "lm",
}


def applied_config_path(workload: str, folder: str | os.PathLike | None = None) -> Path:
    base = Path(folder) if folder is not None else Path(os.environ.get(CONFIG_DIR_ENV) or ".")
    return base / f"recdistill.{workload}.yaml"


def applied_config_files(workload: str) -> list[Path]:
    """The best-settings file for ``workload`` if one exists and picking it up is not switched off."""
    if os.environ.get(NO_APPLIED_CONFIG_ENV):
        return []
    path = applied_config_path(workload)
    return [path] if path.is_file() else []


def add_applied_config(args) -> None:
    """CLI hook: put the workload's best-settings file first in ``args.config`` and say so on stderr."""
    command = getattr(args, "_command", None)
    workload = WORKLOAD_OF_COMMAND.get(tuple(command.words)) if command is not None else None
    if workload is None or not hasattr(args, "config"):
        return
    for path in applied_config_files(workload):
        print(f"using best settings from {path} (written by recdistill bench --apply-best; "
              f"set {NO_APPLIED_CONFIG_ENV}=1 to ignore)", file=sys.stderr)
        args.config = [str(path), *args.config]
