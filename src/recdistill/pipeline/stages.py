"""The pipeline's stages, each a small function over the same context.

A stage receives its composed config (the overrides the profile and the command line give it, plus the
outputs of the stages before it, turned into overrides by its ``link``: the student checkpoint goes to the
teacher and the export; the export folder to distillation) and calls the workload's recipe
(``recdistill.recipes``) in this process, with ``paths.runs_dir`` pointed at the pipeline folder. What the
stage hands on (run folder, checkpoint, adapter, export folder) comes from the recipe's result.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from recdistill.errors import RecdistillError


@dataclass
class StageContext:
    name: str
    cfg: object | None                # the stage's composed config (None for the report)
    overrides: list[str]              # the overrides its config was composed from (recorded in the manifest)
    folder: Path                      # the pipeline folder
    upstream: dict[str, dict]         # outputs of earlier stages, by stage name (absolute paths)
    force: bool = False               # rerun asked for explicitly (--from)


@dataclass(frozen=True)
class Stage:
    name: str
    root: str | None                            # config root composed for the hash; None: no config
    needs: tuple[str, ...]                      # earlier stages whose outputs it reads
    execute: Callable[[StageContext], dict]     # runs the stage, returns its outputs (paths as str)
    outputs_ok: Callable[[dict], bool]          # are recorded outputs still there and complete?
    # (upstream outputs, pipeline folder) -> overrides that hand earlier outputs to this stage
    link: Callable[[dict[str, dict], Path], list[str]] = field(default=lambda upstream, folder: [])


# ---------------------------------------------------------------- helpers


def _finished_run(path) -> bool:
    return bool(path) and (Path(path) / "metrics.json").is_file()


# ---------------------------------------------------------------- prepare


def _prepare(ctx: StageContext) -> dict:
    from recdistill.recipes.prepare import prepare

    # --from prepare means "do it again"; otherwise an up-to-date folder is reused.
    result = prepare(ctx.cfg, force=ctx.force)
    stats = result.stats
    return {"data": str(result.path), "fingerprint": stats.get("fingerprint"), "users": stats.get("users"),
            "items": stats.get("items")}


def _prepare_ok(outputs: dict) -> bool:
    stats = Path(outputs.get("data", "")) / "stats.json"
    if not stats.is_file():
        return False
    return json.loads(stats.read_text()).get("fingerprint") == outputs.get("fingerprint")


# ---------------------------------------------------------------- student


def _student(ctx: StageContext) -> dict:
    from recdistill.recipes.lifecycle import print_ranking_result
    from recdistill.recipes.student import train_student

    result = train_student(ctx.cfg)
    print_ranking_result(result, "student trained; metrics of the best checkpoint")
    return {"run": str(result.run_dir), "checkpoint": result.artefacts["best_checkpoint"]}


def _student_ok(outputs: dict) -> bool:
    return _finished_run(outputs.get("run")) and Path(outputs.get("checkpoint", "")).is_file()


# ---------------------------------------------------------------- teacher


TEACHER_STUDENT_KEY = "teacher.student_checkpoint"   # where the teacher reads the frozen student


def _teacher_link(upstream: dict[str, dict], folder: Path) -> list[str]:
    return [f"{TEACHER_STUDENT_KEY}={upstream['student']['checkpoint']}"]


def _teacher(ctx: StageContext) -> dict:
    from recdistill.recipes.teacher import print_teacher, train_teacher

    result = train_teacher(ctx.cfg)
    print_teacher(result, "teacher trained")
    return {"run": str(result.run_dir), "adapter": result.artefacts["adapter"]}


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
    from recdistill.recipes.export import print_export, run_export

    result = run_export(ctx.cfg)
    print_export(result)
    if not _export_ok({"teacher_outputs": str(result.out_dir)}):
        raise RecdistillError(f"export finished but {result.out_dir}/manifest.json is missing or not complete")
    return {"teacher_outputs": str(result.out_dir)}


def _export_ok(outputs: dict) -> bool:
    manifest = Path(outputs.get("teacher_outputs", "")) / "manifest.json"
    return manifest.is_file() and bool(json.loads(manifest.read_text()).get("complete"))


# ---------------------------------------------------------------- distill


DISTILL_OUTPUTS_KEY = "distill.teacher_outputs"
DISTILL_STUDENT_RUN_KEY = "distill.auto.student_run"   # the student alone is an arm of the weight search


def _distill_link(upstream: dict[str, dict], folder: Path) -> list[str]:
    return [f"{DISTILL_OUTPUTS_KEY}={upstream['export']['teacher_outputs']}",
            f"{DISTILL_STUDENT_RUN_KEY}={upstream['student']['run']}"]


def _distill(ctx: StageContext) -> dict:
    from recdistill.recipes.distill import print_distilled, train_distill

    result = train_distill(ctx.cfg)
    print_distilled(result)
    return {"run": str(result.run_dir), "checkpoint": result.artefacts["best_checkpoint"]}


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
        Stage("prepare", "prepare", (), _prepare, _prepare_ok),
        Stage("student", "student", ("prepare",), _student, _student_ok),
        Stage("teacher", "teacher", ("prepare", "student"), _teacher, _teacher_ok,
              _teacher_link),
        Stage("export", "export", ("prepare", "student", "teacher"), _export, _export_ok,
              _export_link),
        Stage("distill", "distill", ("prepare", "student", "export"), _distill, _student_ok,
              _distill_link),
        Stage("report", None, ("student", "teacher", "distill"), _report, _report_ok),
    )
}
ORDER: tuple[str, ...] = tuple(STAGES)
