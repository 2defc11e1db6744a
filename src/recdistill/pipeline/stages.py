"""The pipeline's stages, each a small function over the same context.

A stage receives the overrides the profile and the command line give it, plus the outputs of the stages
before it, turned into overrides by its ``link`` (the student checkpoint goes to the teacher and the
export; the export folder to distillation). Training stages run their own command (``recdistill train
student`` ...) in this process through the CLI table, exactly as a user would, with ``paths.runs_dir``
pointed at the pipeline folder; the run folder they create is found afterwards.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from omegaconf import DictConfig

from recdistill.errors import RecdistillError


@dataclass
class StageContext:
    name: str
    cfg: DictConfig | None            # the stage's resolved config (None for the report)
    overrides: list[str]              # what the stage's command receives
    folder: Path                      # the pipeline folder
    upstream: dict[str, dict]         # outputs of earlier stages, by stage name (absolute paths)
    force: bool = False               # rerun asked for explicitly (--from)


@dataclass(frozen=True)
class Stage:
    name: str
    root: str | None                            # config root composed for the hash; None: no config
    command: tuple[str, ...] | None             # CLI words, for stages that run a command
    needs: tuple[str, ...]                      # earlier stages whose outputs it reads
    execute: Callable[[StageContext], dict]     # runs the stage, returns its outputs (paths as str)
    outputs_ok: Callable[[dict], bool]          # are recorded outputs still there and complete?
    # (upstream outputs, pipeline folder) -> overrides that hand earlier outputs to this stage
    link: Callable[[dict[str, dict], Path], list[str]] = field(default=lambda upstream, folder: [])


# ---------------------------------------------------------------- helpers


def run_command(words: tuple[str, ...], overrides: list[str]) -> int:
    """Run a recdistill command in this process, exactly as ``recdistill <words> <overrides>`` would,
    but letting its RecdistillError reach the pipeline (which names the failing stage)."""
    from recdistill.cli import _load, build_parser

    args = build_parser().parse_args([*words, *overrides])
    status = int(_load(args._command.target)(args) or 0)
    if status != 0:
        raise RecdistillError(f"`recdistill {' '.join(words)}` exited with status {status}")
    return status


def _run_folders(runs_dir: Path) -> set[Path]:
    if not runs_dir.is_dir():
        return set()
    return {p for p in runs_dir.iterdir() if p.is_dir() and (p / "config.yaml").is_file()}


def run_training_command(ctx: StageContext) -> Path:
    """Run the stage's command and return the run folder it created (the one new folder in runs_dir)."""
    runs_dir = Path(str(ctx.cfg.paths.runs_dir)).expanduser()
    before = _run_folders(runs_dir)
    run_command(STAGES[ctx.name].command, ctx.overrides)
    new = sorted(_run_folders(runs_dir) - before, key=lambda p: p.stat().st_mtime)
    if not new:
        raise RecdistillError(f"stage {ctx.name} finished but wrote no run folder under {runs_dir}")
    run = new[-1]
    if not (run / "metrics.json").is_file():
        raise RecdistillError(f"stage {ctx.name}: run folder {run} has no metrics.json; the run did not finish")
    return run


def _finished_run(path) -> bool:
    return bool(path) and (Path(path) / "metrics.json").is_file()


def find_checkpoint(run: Path) -> Path:
    """The checkpoint a training run selected: ``metrics.json``'s ``checkpoint`` entry when present,
    else ``checkpoints/best*.ckpt``, else the newest ``.ckpt`` in ``checkpoints/``."""
    metrics = json.loads((run / "metrics.json").read_text())
    for key in ("best_checkpoint", "checkpoint"):
        named = metrics.get(key)
        if isinstance(named, str) and Path(named).is_file():
            return Path(named)
    folder = run / "checkpoints"
    best = sorted(folder.glob("best*.ckpt"))
    candidates = best or sorted(folder.glob("*.ckpt"), key=lambda p: p.stat().st_mtime)
    if not candidates:
        raise RecdistillError(f"run {run} wrote no checkpoint in {folder}")
    return candidates[-1]


# ---------------------------------------------------------------- prepare


def _prepare(ctx: StageContext) -> dict:
    from recdistill.data.prepare import ensure_prepared, prepare_dataset

    # --from prepare means "do it again"; otherwise ensure_prepared reuses an up-to-date folder.
    folder = prepare_dataset(ctx.cfg) if ctx.force else ensure_prepared(ctx.cfg)
    stats = json.loads((Path(folder) / "stats.json").read_text())
    return {"data": str(folder), "fingerprint": stats.get("fingerprint"), "users": stats.get("users"),
            "items": stats.get("items")}


def _prepare_ok(outputs: dict) -> bool:
    stats = Path(outputs.get("data", "")) / "stats.json"
    if not stats.is_file():
        return False
    return json.loads(stats.read_text()).get("fingerprint") == outputs.get("fingerprint")


# ---------------------------------------------------------------- student


def _student(ctx: StageContext) -> dict:
    run = run_training_command(ctx)
    return {"run": str(run), "checkpoint": str(find_checkpoint(run))}


def _student_ok(outputs: dict) -> bool:
    return _finished_run(outputs.get("run")) and Path(outputs.get("checkpoint", "")).is_file()


# ---------------------------------------------------------------- teacher


TEACHER_STUDENT_KEY = "teacher.student_checkpoint"   # where the teacher reads the frozen student


def _teacher_link(upstream: dict[str, dict], folder: Path) -> list[str]:
    return [f"{TEACHER_STUDENT_KEY}={upstream['student']['checkpoint']}"]


def find_adapter(run: Path) -> Path:
    """The teacher's saved adapter folder: ``<run>/adapter`` with ``adapter.json`` and ``adapter.safetensors``."""
    folder = run / "adapter"
    if not (folder / "adapter.json").is_file():
        raise RecdistillError(f"teacher run {run} saved no adapter ({folder}/adapter.json is missing)")
    return folder


def _teacher(ctx: StageContext) -> dict:
    run = run_training_command(ctx)
    return {"run": str(run), "adapter": str(find_adapter(run))}


def _teacher_ok(outputs: dict) -> bool:
    return _finished_run(outputs.get("run")) and (Path(outputs.get("adapter", "")) / "adapter.json").is_file()


# ---------------------------------------------------------------- export


EXPORT_ADAPTER_KEY = "teacher.adapter"
EXPORT_STUDENT_KEY = "export.student_checkpoint"   # the student whose top-M are the teacher's candidates
EXPORT_OUT_KEY = "export.out_dir"


def _export_link(upstream: dict[str, dict], folder: Path) -> list[str]:
    # One output folder per teacher run: a new teacher never writes into an older teacher's files.
    out = folder / "teacher_outputs" / Path(upstream["teacher"]["run"]).name
    return [f"{EXPORT_ADAPTER_KEY}={upstream['teacher']['adapter']}",
            f"{EXPORT_STUDENT_KEY}={upstream['student']['checkpoint']}",
            f"{EXPORT_OUT_KEY}={out}"]


def _export(ctx: StageContext) -> dict:
    run_command(STAGES["export"].command, ctx.overrides)
    out = Path(str(ctx.cfg.export.out_dir))
    if not _export_ok({"teacher_outputs": str(out)}):
        raise RecdistillError(f"export finished but {out}/manifest.json is missing or not complete")
    return {"teacher_outputs": str(out)}


def _export_ok(outputs: dict) -> bool:
    manifest = Path(outputs.get("teacher_outputs", "")) / "manifest.json"
    return manifest.is_file() and bool(json.loads(manifest.read_text()).get("complete"))


# ---------------------------------------------------------------- distill


DISTILL_OUTPUTS_KEY = "distill.teacher_outputs"


def _distill_link(upstream: dict[str, dict], folder: Path) -> list[str]:
    return [f"{DISTILL_OUTPUTS_KEY}={upstream['export']['teacher_outputs']}"]


def _distill(ctx: StageContext) -> dict:
    run = run_training_command(ctx)
    return {"run": str(run), "checkpoint": str(find_checkpoint(run))}


# ---------------------------------------------------------------- report


def _report(ctx: StageContext) -> dict:
    from recdistill.report import render_report

    files = render_report([ctx.folder], ctx.folder / "report")
    return {"markdown": str(files.markdown), "html": str(files.html)}


def _report_ok(outputs: dict) -> bool:
    return all(Path(outputs.get(k, "")).is_file() for k in ("markdown", "html"))


STAGES: dict[str, Stage] = {
    s.name: s
    for s in (
        Stage("prepare", "prepare", None, (), _prepare, _prepare_ok),
        Stage("student", "student", ("train", "student"), ("prepare",), _student, _student_ok),
        Stage("teacher", "teacher", ("train", "teacher"), ("prepare", "student"), _teacher, _teacher_ok,
              _teacher_link),
        Stage("export", "export", ("export",), ("prepare", "student", "teacher"), _export, _export_ok,
              _export_link),
        Stage("distill", "distill", ("train", "distill"), ("prepare", "export"), _distill, _student_ok,
              _distill_link),
        Stage("report", None, None, ("student", "teacher", "distill"), _report, _report_ok),
    )
}
ORDER: tuple[str, ...] = tuple(STAGES)
