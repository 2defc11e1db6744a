"""Assemble the report page for one run, a comparison of runs, or a whole pipeline."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from pathlib import Path

from recdistill.engine.rundir import atomic_write_text
from recdistill.errors import RecdistillError
from recdistill.report.html import markdown_to_html
from recdistill.report.plots import plot_comparison, plot_run_curves
from recdistill.report.runs import PipelineInfo, RunInfo, is_pipeline, load_pipeline, load_run, run_state
from recdistill.report.tables import environment_table, is_main_metric, metrics_table, pipeline_stages_table, stages_table

HEADLINE_METRICS = ("val/ndcg@10", "test/ndcg@10", "test/hr@10")
COMPARISON_CURVE = "val/ndcg@10"


@dataclass
class ReportFiles:
    markdown: Path
    html: Path
    images: list[Path]


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "run"


def _unique_labels(runs: list[RunInfo]) -> None:
    seen: dict[str, int] = {}
    for run in runs:
        if run.label in seen:
            seen[run.label] += 1
            run.label = f"{run.label} ({seen[run.label]})"
        else:
            seen[run.label] = 1


def _verdict(baseline: RunInfo, other: RunInfo) -> list[str]:
    """One sentence per headline metric both runs have: better, worse or equal, by how much."""
    lines = []
    for key in HEADLINE_METRICS:
        a, b = baseline.numeric_metrics.get(key), other.numeric_metrics.get(key)
        if a is None or b is None:
            continue
        if b > a:
            word = "better"
        elif b < a:
            word = "worse"
        else:
            word = "equal"
        rel = f", {(b - a) / a:+.1%}" if a else ""
        lines.append(f"- `{key}`: {other.label} {b:.4f} vs {baseline.label} {a:.4f} ({word}: {b - a:+.4f}{rel})")
    return lines


def _run_line(run: RunInfo) -> str:
    choices = run.config.get("choices") or {}
    seed = (run.config.get("efficiency") or {}).get("seed")
    bits = [f"**{run.label}**: `{run.path}`", f"state {run_state(run.path)}"]
    if choices:
        bits.append("config " + ", ".join(f"{k}={v}" for k, v in choices.items()))
    if seed is not None:
        bits.append(f"seed {seed}")
    if run.missing:
        bits.append("missing: " + ", ".join(run.missing))
    return "- " + "; ".join(bits)


def _build_markdown(title: str, runs: list[RunInfo], baseline: RunInfo | None, compared: list[RunInfo],
                    images: list[Path], out: Path, pipeline: PipelineInfo | None) -> str:
    parts = [f"# {title}", "", f"Written {time.strftime('%Y-%m-%d %H:%M:%S')} by `recdistill report`.", ""]
    parts += ["## Runs", ""] + [_run_line(run) for run in runs] + [""]
    if baseline and compared:
        verdicts = [line for run in compared for line in _verdict(baseline, run)]
        if verdicts:
            parts += ["## Summary", ""] + verdicts + [""]
    parts += ["## Metrics", "",
              "Full-catalogue ranking metrics (`val/*`, `test/*`); `*sampled*` keys use the sampled protocol and "
              "candidate metrics of the teacher rank only its candidate list, so compare them only with the same "
              "key. The last columns give each run's change against the first.", "",
              metrics_table(runs, baseline, compared, only=is_main_metric), "",
              "### All metrics", "", metrics_table(runs, baseline, compared), ""]
    parts += ["## Time and peak memory per stage", ""]
    if pipeline is not None:
        parts += ["Pipeline stages (wall time as the pipeline measured it, loading included):", "",
                  pipeline_stages_table(pipeline.manifest), "", "Measured stages inside each run:", ""]
    parts += [stages_table(runs), ""]
    parts += ["## Training curves", ""]
    if images:
        parts += [f"![{image.stem}]({image.relative_to(out).as_posix()})\n" for image in images]
    else:
        parts += ["_No training curves (logs/csv/metrics.csv missing or empty)._", ""]
    parts += ["## Environment", "", environment_table(runs), ""]
    return "\n".join(parts)


def _default_out(paths: list[Path]) -> Path:
    if len(paths) == 1:
        return paths[0] / "report"
    return Path("reports") / f"compare-{time.strftime('%Y%m%d-%H%M%S')}"


def render_report(paths: list[str | Path], out: str | Path | None = None) -> ReportFiles:
    """Write ``report.md``, ``report.html`` and curve PNGs for run folders or one pipeline folder.

    * one pipeline folder: student, teacher and distilled student side by side, with the change of each
      against the student; the pipeline's own stage times as well;
    * one run folder: that run;
    * several run folders: a comparison, each run's change against the first.
    """
    paths = [Path(p) for p in paths]
    if not paths:
        raise RecdistillError("give at least one run folder or pipeline folder")
    pipeline = None
    if len(paths) == 1 and is_pipeline(paths[0]):
        pipeline = load_pipeline(paths[0])
        runs = pipeline.runs
        if not runs:
            raise RecdistillError(f"pipeline {paths[0]} has no finished training stages to report yet; "
                                  "run `recdistill pipeline` to finish it")
        title = f"recdistill pipeline report: {pipeline.manifest.get('profile', paths[0].name)}"
        baseline = next((r for r in runs if r.label == "student"), None)
        compared = [r for r in runs if r is not baseline]
    else:
        if any(is_pipeline(p) for p in paths) and len(paths) > 1:
            raise RecdistillError("give one pipeline folder, or run folders; not a pipeline folder among others")
        runs = [load_run(p) for p in paths]
        _unique_labels(runs)
        title = f"recdistill report: {runs[0].label}" if len(runs) == 1 else f"recdistill comparison of {len(runs)} runs"
        baseline = runs[0] if len(runs) > 1 else None
        compared = runs[1:]
    out = Path(out) if out is not None else _default_out(paths)
    out.mkdir(parents=True, exist_ok=True)
    images = [img for run in runs if (img := plot_run_curves(run, out, _slug(run.label)))]
    if len(runs) > 1:
        comparison = plot_comparison(runs, COMPARISON_CURVE, out)
        if comparison:
            images.insert(0, comparison)
    text = _build_markdown(title, runs, baseline, compared, images, out, pipeline)
    md_path = atomic_write_text(out / "report.md", text)
    html_path = atomic_write_text(out / "report.html", markdown_to_html(text, title))
    return ReportFiles(md_path, html_path, images)
