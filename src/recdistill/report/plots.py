"""Training curves as PNG, from the CSV log Lightning writes (``logs/csv/metrics.csv``).

Losses (training and validation) share one axis, drawn against the optimizer step; ranking metrics get
their own axis, against the epoch, so a loss of 10 never flattens a metric of 0.05. Every series has its
own line style and marker, so two identical series (HR@10 and Recall@10 are equal with one relevant item,
so Recall is left out) still show as two. A series with few points is drawn with markers and the count is
said. The files are written to a temporary name and renamed, like every other output.
"""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; no display on servers
import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402

from recdistill.engine.rundir import atomic_write_bytes  # noqa: E402
from recdistill.report.runs import RunInfo  # noqa: E402

# Validation ranking metrics worth a curve; others (hr@1, mrr@20, ...) stay in the tables.
CURVE_METRICS = re.compile(r"^val/(ndcg|hr)@10$|^val/cand\d+_(ndcg@10|hr@1)$")
LOSS_COLUMNS = re.compile(r"^(train|val)/.*loss")
STYLES = [("-", "o"), ("--", "s"), (":", "^"), ("-.", "D"), ((0, (5, 1)), "v"), ((0, (1, 1)), "x")]


def read_curves(run: RunInfo) -> pd.DataFrame | None:
    if not run.curves_csv.is_file():
        return None
    try:
        frame = pd.read_csv(run.curves_csv)
    except (pd.errors.EmptyDataError, pd.errors.ParserError):
        return None
    return frame if len(frame) else None


def save_figure(fig, path: Path) -> Path:
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


def _loss_columns(frame: pd.DataFrame) -> list[str]:
    columns = [c for c in frame.columns if LOSS_COLUMNS.match(c) and frame[c].notna().any()]
    # Lightning logs a per-step and a per-epoch copy of an on_step+on_epoch loss; keep the per-step one
    # unless it has fewer than two points (a short run whose steps fall between logging intervals)
    for column in [c for c in columns if c.endswith("_epoch")]:
        step = column[: -len("_epoch")] + "_step"
        if step in columns and frame[step].notna().sum() >= 2:
            columns.remove(column)
    return columns


def _plot_series(ax, x, y, label: str, index: int) -> None:
    line, marker = STYLES[index % len(STYLES)]
    few = len(x) < 30
    ax.plot(x, y, linestyle=line, marker=marker if few else None, markersize=5 + 2 * (index % 2), alpha=0.85,
            label=label + (f" ({len(x)} point{'s' if len(x) != 1 else ''})" if len(x) < 3 else ""))


def _val_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if CURVE_METRICS.match(c) and frame[c].notna().any()]


def plot_run_curves(run: RunInfo, out: Path, slug: str) -> Path | None:
    """One PNG per run: training losses by step (left), validation metrics by epoch (right)."""
    frame = read_curves(run)
    if frame is None:
        return None
    losses, vals = _loss_columns(frame), _val_columns(frame)
    if not losses and not vals:
        return None
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for index, column in enumerate(losses):
        part = frame[["step", column]].dropna()
        _plot_series(axes[0], part["step"], part[column], column, index)
    axes[0].set(title=f"{run.label}: losses", xlabel="optimizer step", ylabel="loss")
    for index, column in enumerate(vals):
        part = frame[["epoch", column]].dropna()
        _plot_series(axes[1], part["epoch"], part[column], column, index)
    axes[1].set(title=f"{run.label}: validation ranking metrics", xlabel="epoch", ylabel="metric")
    if vals and frame["epoch"].dropna().nunique() <= 1:
        axes[1].set_title(f"{run.label}: validation (one epoch: one point)")
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    return save_figure(fig, out / f"curves-{slug}.png")


def plot_comparison(runs: list[RunInfo], metric: str, out: Path) -> Path | None:
    """One metric's validation curve for every run that logged it, on shared axes."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for index, run in enumerate(runs):
        frame = read_curves(run)
        if frame is None or metric not in frame.columns:
            continue
        part = frame[["epoch", metric]].dropna()
        if len(part):
            _plot_series(ax, part["epoch"], part[metric], run.label, index)
    if not ax.lines:
        plt.close(fig)
        return None
    ax.set(title=f"{metric} by epoch", xlabel="epoch", ylabel=metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return save_figure(fig, out / f"compare-{metric.replace('/', '_').replace('@', '_at_')}.png")
