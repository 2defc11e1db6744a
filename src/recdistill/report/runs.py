"""Read run folders (see docs/architecture.md "Runs") and pipeline folders for the report.

A run folder holds ``config.yaml``, ``metrics.json``, ``stages.json``, ``environment.json`` and
``logs/csv/metrics.csv``. A pipeline folder holds ``manifest.json`` (written by ``recdistill pipeline``)
whose stages point at their run folders. Missing optional files are tolerated (a run that crashed before
``finish`` has a config but no metrics); the page says what is missing instead of failing.
"""

from __future__ import annotations

import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from recdistill.errors import RecdistillError

MANIFEST = "manifest.json"
RUN_FILES = ("config.yaml", "metrics.json", "stages.json", "environment.json")


@dataclass
class RunInfo:
    """What the report needs from one run folder."""

    path: Path
    label: str                      # column heading: "student", "distilled", or the folder name
    config: dict = field(default_factory=dict)
    metrics: dict = field(default_factory=dict)
    stages: list = field(default_factory=list)
    environment: dict = field(default_factory=dict)
    missing: list = field(default_factory=list)   # run files that were not there
    kind: str | None = None         # a pipeline run's heading without its seed ("student"), if any

    @property
    def curves_csv(self) -> Path:
        return self.path / "logs" / "csv" / "metrics.csv"

    @property
    def numeric_metrics(self) -> dict[str, float]:
        return {k: float(v) for k, v in self.metrics.items()
                if isinstance(v, (int, float)) and not isinstance(v, bool)}


@dataclass
class PipelineInfo:
    """A pipeline folder: its manifest and the runs of its training stages, in stage order."""

    path: Path
    manifest: dict
    runs: list[RunInfo]


def _read_json(path: Path, default):
    if not path.is_file():
        return default
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RecdistillError(f"{path} is not valid JSON ({exc}); was the run interrupted while writing it?") from exc


def load_run(path: str | Path, label: str | None = None) -> RunInfo:
    """Load one run folder. It must be a folder with at least a config.yaml or a metrics.json."""
    path = Path(path)
    if not path.is_dir():
        raise RecdistillError(f"{path} is not a folder; give run folders (runs/<date>-<time>_<name>/) "
                              "or a pipeline folder (one with manifest.json)")
    present = [name for name in RUN_FILES if (path / name).is_file()]
    if not {"config.yaml", "metrics.json"} & set(present):
        raise RecdistillError(f"{path} is not a run folder: it has neither config.yaml nor metrics.json")
    config: dict = {}
    if (path / "config.yaml").is_file():
        config = yaml.safe_load((path / "config.yaml").read_text(encoding="utf-8")) or {}
    return RunInfo(
        path=path,
        label=label or path.name,
        config=config,
        metrics=_read_json(path / "metrics.json", {}),
        stages=_read_json(path / "stages.json", []),
        environment=_read_json(path / "environment.json", {}),
        missing=[name for name in RUN_FILES if name not in present],
    )


def run_state(path: str | Path) -> str:
    """The run's state from its ``state.json`` (``running``, ``complete``, ``failed: <error>``,
    ``interrupted``). A ``running`` run whose process is gone on this machine was killed (nothing could
    record it) and is shown as ``interrupted (killed)``."""
    path = Path(path)
    state = _read_json(path / "state.json", None)
    if not isinstance(state, dict):
        return "complete" if (path / "metrics.json").is_file() else "unknown (no state.json)"
    name = str(state.get("state"))
    if name == "running" and state.get("host") == socket.gethostname() and not _alive(state.get("pid")):
        return "interrupted (killed: its process ended without recording it)"
    if name == "failed" and state.get("error"):
        return f"failed: {state['error']}"
    return name


def _alive(pid) -> bool:
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except (PermissionError, TypeError, ValueError):
        return True
    return True


def is_pipeline(path: str | Path) -> bool:
    return (Path(path) / MANIFEST).is_file()


# The pipeline stages whose runs are compared, and the column heading each gets.
PIPELINE_RUN_LABELS = {"student": "student", "teacher": "teacher", "distill": "distilled"}


def load_pipeline(path: str | Path) -> PipelineInfo:
    """The runs of the pipeline's latest plan (``entries`` in the manifest: ``student``, or with seeds
    ``student@seed0``, ...), in stage order; entries of earlier plans are left out."""
    path = Path(path)
    manifest = _read_json(path / MANIFEST, None)
    if not isinstance(manifest, dict) or "stages" not in manifest:
        raise RecdistillError(f"{path / MANIFEST} is not a pipeline manifest (no 'stages')")
    if manifest.get("entries"):
        manifest = {**manifest, "stages": {e: manifest["stages"][e] for e in manifest["entries"]
                                           if e in manifest["stages"]}}
    runs = []
    for stage, label in PIPELINE_RUN_LABELS.items():
        for name, entry in manifest["stages"].items():
            if name.split("@", 1)[0] != stage:
                continue
            run_path = (entry.get("outputs") or {}).get("run")
            if entry.get("status") == "done" and run_path:
                run_path = Path(run_path) if Path(run_path).is_absolute() else path / run_path
                if run_path.is_dir():
                    seed = name.partition("@seed")[2]
                    runs.append(load_run(run_path, f"{label} seed {seed}" if seed else label))
                    runs[-1].kind = label
    return PipelineInfo(path, manifest, runs)
