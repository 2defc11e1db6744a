"""The report's two summary figures: the headline (NDCG@10 per model, with intervals over seeds) and the
cost per stage (wall time and peak memory)."""

from __future__ import annotations

import re
from pathlib import Path

from recdistill.report.aggregate import summarize
from recdistill.report.plots import plt, save_figure
from recdistill.report.runs import RunInfo
from recdistill.report.seeds import SeedGroup

HEADLINE_KEY = "test/ndcg@10"


def headline_figure(groups: list[SeedGroup], out: Path, key: str = HEADLINE_KEY) -> Path | None:
    """One row per model (seed group) that has ``key``: each seed as a dot, the mean as a bar, and the
    95 % interval of the mean as an error bar when there are two seeds or more."""
    rows = [(g, list(g.values(key).values())) for g in groups]
    rows = [(g, v) for g, v in rows if v]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(7, 0.7 * len(rows) + 1.4))
    summaries = [summarize(values) for _, values in rows]
    left = min([0.0] + [s.low for s in summaries if s.low is not None])
    right = max([max(v) for _, v in rows] + [s.high for s in summaries if s.high is not None])
    right = right if right > left else left + 1e-3  # all zero: still a visible axis
    for y, ((group, values), s) in enumerate(zip(rows, summaries)):
        ax.barh(y, s.mean, height=0.5, color="#9ecae1", edgecolor="#3182bd")
        ax.plot(values, [y] * len(values), "o", color="#08519c", markersize=4, zorder=3)
        if s.low is not None:
            ax.errorbar(s.mean, y, xerr=[[s.mean - s.low], [s.high - s.mean]], color="black", capsize=5, zorder=4)
            text = f"{s.mean:.4f} ± {s.half_width:.4f} (n={s.n})"
        else:
            text = f"{s.mean:.4f} (one seed: no interval)"
        ax.annotate(text, (right, y), xytext=(6, 0), textcoords="offset points", va="center", fontsize=8)
    chance = next((r.numeric_metrics.get("test/chance_ndcg@10") for g, _ in rows for r in g.runs
                   if "test/chance_ndcg@10" in r.numeric_metrics), None)
    if chance is not None:
        ax.axvline(chance, color="grey", linestyle="--", linewidth=1)
        ax.annotate("chance", (chance, -0.45), fontsize=7, color="grey", xytext=(2, 0), textcoords="offset points",
                    va="top")
    ax.set_yticks(range(len(rows)), [g.label for g, _ in rows], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(left, left + (right - left) * 1.6)  # room for the labels on the right
    ax.set(xlabel=f"{key} (full catalogue)", title="Test NDCG@10 per model: mean, seeds, 95 % interval")
    ax.grid(axis="x", alpha=0.3)
    return save_figure(fig, out / "headline-ndcg10.png")


def _stage_costs(runs: list[RunInfo], manifest: dict | None) -> list[tuple[str, float, float | None]]:
    """(label, wall seconds, peak RSS MB) per pipeline stage, or per measured fit/test stage of each run."""
    if manifest:
        return [(name, float(e["seconds"]), e.get("peak_rss_mb")) for name, e in (manifest.get("stages") or {}).items()
                if name != "report" and isinstance(e.get("seconds"), (int, float))]
    costs = []
    for run in runs:
        for record in run.stages:
            name = str(record.get("stage", ""))
            if re.fullmatch(r"fit|test|export", name):
                costs.append((f"{run.label}: {name}", float(record.get("seconds", 0.0)), record.get("peak_rss_mb")))
    return costs


def cost_figure(runs: list[RunInfo], out: Path, manifest: dict | None = None) -> Path | None:
    costs = _stage_costs(runs, manifest)
    if not costs:
        return None
    labels = [c[0] for c in costs]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 0.45 * len(costs) + 1.5), sharey=True)
    left.barh(labels, [c[1] for c in costs], color="#fdae6b")
    left.set(xlabel="wall seconds", title="Time per stage")
    right.barh(labels, [c[2] or 0 for c in costs], color="#a1d99b")
    right.set(xlabel="peak resident memory, MB", title="Peak memory per stage")
    for ax, index in ((left, 1), (right, 2)):
        for y, c in enumerate(costs):
            value = c[index]
            ax.annotate("not measured" if value is None else f"{value:,.0f}" if value >= 10 else f"{value:.1f}",
                        (value or 0, y), xytext=(3, 0), textcoords="offset points", va="center", fontsize=7)
        ax.grid(axis="x", alpha=0.3)
        ax.margins(x=0.2)
    left.invert_yaxis()
    return save_figure(fig, out / "cost-per-stage.png")
