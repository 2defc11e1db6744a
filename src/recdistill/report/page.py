"""Assemble the report page for one run, a comparison of runs, or a whole pipeline."""

from __future__ import annotations

import json

import re
import time
from dataclasses import dataclass
from pathlib import Path

from recdistill.engine.rundir import atomic_write_text
from recdistill.errors import RecdistillError
from recdistill.report.html import markdown_to_html
from recdistill.report.plots import plot_comparison, plot_run_curves
from recdistill.report.runs import PipelineInfo, RunInfo, is_pipeline, load_pipeline, load_run, run_state
from recdistill.report.buckets import baseline_groups, bucket_section
from recdistill.report.selection import SELECTION_FILE, headline_lines, selection_lines
from recdistill.report.seeds import group_by_kind, has_seed_groups, seed_of, seeds_section
from recdistill.report.figures import cost_figure, headline_figure
from recdistill.report.format import percent
from recdistill.report.protocols import describe_family, families, family_note, family_of, is_main_row
from recdistill.report.tables import environment_table, metrics_table, pipeline_stages_table, stages_table

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
    """One sentence per headline metric both runs have: higher, lower or equal, by how much; one run each, so
    no "better" or "worse" is claimed (that needs an interval: `--seeds`). A distilled run for which
    validation chose no teacher at all is said to be the student retrained."""
    lines = []
    for key in HEADLINE_METRICS:
        a, b = baseline.numeric_metrics.get(key), other.numeric_metrics.get(key)
        if a is None or b is None:
            continue
        if b > a:
            word = "higher"
        elif b < a:
            word = "lower"
        else:
            word = "equal"
        rel = f", {(b - a) / a:+.1%}" if a else ""
        lines.append(f"- `{key}`: {other.label} {b:.4f} vs {baseline.label} {a:.4f} ({word}: {b - a:+.4f}{rel})")
    if lines:
        note = no_teacher_note(other)
        lines.append(f"- One run each: whether the difference is more than training noise is unknown (run the "
                     f"pipeline with `--seeds 0,1,2` for intervals).{note}")
    return lines


def no_teacher_note(run: RunInfo) -> str:
    selection = run.path / SELECTION_FILE
    if not selection.is_file():
        return ""
    chosen = json.loads(selection.read_text())
    if float(chosen.get("chosen_weight", 1)) == 0 and float(chosen.get("chosen_gamma", 0)) == 0:
        return (f" Validation gave the teacher no weight, so {run.label} is the student trained again by the "
                "distillation stage: a difference from the student is noise between two trainings, not the teacher.")
    return ""


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


def _figure(image: Path | None, out: Path, caption: str) -> list[str]:
    if image is None:
        return []
    return [f"![{image.stem}]({image.relative_to(out).as_posix()})", "", f"_{caption}_", ""]


def _teacher_section(runs: list[RunInfo]) -> list[str]:
    """The teacher's budget and what its outputs covered: what a reader needs before trusting its numbers."""
    lines = []
    for run in runs:
        m = run.numeric_metrics
        if "train_steps" in m:
            train = run.config.get("train") or {}
            per_step = f", {m['seconds_per_step']:.2f} s per step" if "seconds_per_step" in m else ""
            users = [f"{int(m[k])} {k.split('/')[0]}" for k in sorted(m) if re.fullmatch(r"(val|test)/cand\d+_users", k)]
            lines.append(f"- **{run.label}** trained {int(m['train_steps'])} optimizer steps of "
                         f"{train.get('batch_size', '?')} prompts{per_step}"
                         + (f"; scored on {' and '.join(users)} users" if users else "") + ".")
        if "teacher_coverage" in m:
            lines.append(f"- **{run.label}**: the teacher's outputs cover {percent(m['teacher_coverage'])} of the "
                         "training targets; the other positions train with the usual loss alone.")
    return ["## Teacher budget and coverage", "", *lines, ""] if lines else []


def _protocol_sections(runs: list[RunInfo], baseline: RunInfo | None, compared: list[RunInfo]) -> list[str]:
    eval_settings = next((r.config["eval"] for r in runs if r.config.get("eval")), {})
    parts = ["## Metrics by protocol", "",
             "Each protocol in its own table: numbers from different protocols are not comparable. The last "
             "columns give each run's change against the first.", ""]
    for fid in families(runs):
        family = describe_family(fid, eval_settings)
        members = [r for r in runs if any(family_of(k) == fid for k in r.numeric_metrics)]
        base = baseline if baseline in members else None
        others = [r for r in compared if r in members] if base else []
        parts += [f"### {family.title}", "", family.about, "", *[f"- {line}" for line in family_note(fid, members)], "",
                  metrics_table(members, base, others, only=lambda k, f=fid: family_of(k) == f and is_main_row(k)), ""]
    return parts


def _build_markdown(title: str, runs: list[RunInfo], baseline: RunInfo | None, compared: list[RunInfo],
                    figures: dict, images: list[Path], out: Path, pipeline: PipelineInfo | None) -> str:
    parts = [f"# {title}", "", f"Written {time.strftime('%Y-%m-%d %H:%M:%S')} by `recdistill report`.", ""]
    groups = group_by_kind(runs)
    if figures.get("headline"):
        parts += ["## Headline", ""] + _figure(
            figures["headline"], out, "Test NDCG@10 over the full catalogue: bar = mean, dots = seeds, error bar = 95 % "
            "interval of the mean over seeds (none with one seed). Models measured under another protocol (the "
            "teacher over its candidates) are not drawn; see their own table.")
        parts += headline_lines(runs, *paired_distilled(groups))
    parts += ["## Runs", ""] + [_run_line(run) for run in runs] + [""]
    if baseline and compared:
        verdicts = [line for run in compared for line in _verdict(baseline, run)]
        if verdicts:
            seeded = has_seed_groups(groups)
            note = ([f"One seed ({seed_of(baseline)}) against its own student; every seed: \"Over seeds\" below.", ""]
                    if seeded else [])
            parts += ["## Summary", "", *note] + verdicts + [""]
    parts += selection_lines(runs)
    parts += seeds_section(groups)
    parts += bucket_section(groups, baselines=baseline_groups(runs))
    parts += _protocol_sections(runs, baseline, compared)
    parts += _teacher_section(runs)
    parts += ["## Time and peak memory per stage", ""]
    parts += _figure(figures.get("cost"), out, "Wall time and peak resident memory per stage"
                     + (" (as the pipeline measured them, loading included)." if pipeline else " (fit and test of each run)."))
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
    parts += ["## Appendix: every recorded metric", "",
              "Every cut-off and protocol, counts and chance levels (`*chance_*`), as recorded in each run's "
              "metrics.json.", "", metrics_table(runs, baseline, compared), ""]
    return "\n".join(parts)


def paired_distilled(groups) -> tuple:
    """(val, test) of the distilled group minus the student group, paired by seed, as (mean, low, high); None
    when there are not two seeded groups to pair."""
    from recdistill.report.aggregate import paired_interval

    student = next((g for g in groups if g.runs[0].kind == "student" and len(g.runs) > 1), None)
    distilled = next((g for g in groups if g.runs[0].kind == "distilled" and len(g.runs) > 1), None)
    if student is None or distilled is None:
        return None, None
    out = []
    for split in ("val", "test"):
        key = f"{split}/ndcg@10"
        if not set(student.values(key)) & set(distilled.values(key)):
            return None, None
        d = paired_interval(student.values(key), distilled.values(key))
        out.append((d["mean"], d["ci95_low"], d["ci95_high"]))
    return tuple(out)


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
        baseline = next((r for r in runs if (r.kind or r.label) == "student"), None)
        # with seeds, each run is set against the student of its own seed (the seeds section pairs them all)
        compared = [r for r in runs if r is not baseline and (baseline is None or seed_of(r) == seed_of(baseline))]
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
    figures = {"headline": headline_figure(group_by_kind(runs), out),
               "cost": cost_figure(runs, out, pipeline.manifest if pipeline else None)}
    text = _build_markdown(title, runs, baseline, compared, figures, images, out, pipeline)
    images = [f for f in figures.values() if f] + images
    md_path = atomic_write_text(out / "report.md", text)
    html_path = atomic_write_text(out / "report.html", markdown_to_html(text, title))
    return ReportFiles(md_path, html_path, images)
