"""Training curves as PNG, from the CSV log Lightning writes (``logs/csv/metrics.csv``).

Losses are drawn against the optimizer step, validation metrics against the epoch. The files are
written to a temporary name and renamed, like every other output.
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

# Validation metrics worth a curve; others (hr@1, mrr@20, ...) stay in the tables.
CURVE_METRICS = re.compile(r"^val/(ndcg|hr|recall)@10$|^val/cand\d+_(ndcg@10|hr@1)$|^val/.*loss")


def read_curves(run: RunInfo) -> pd.DataFrame | None:
    if not run.curves_csv.is_file():
        return None
    try:
        frame = pd.read_csv(run.curves_csv)
    except (pd.errors.EmptyDataError, pd.errors.ParserError):
        return None
    return frame if len(frame) else None


def _save(fig, path: Path) -> Path:
    import io

    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(fig)
    return atomic_write_bytes(path, buffer.getvalue())


def _loss_columns(frame: pd.DataFrame) -> list[str]:
    return [c for c in frame.columns if c.startswith("train") and "loss" in c and frame[c].notna().any()]


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
    for column in losses:
        part = frame[["step", column]].dropna()
        axes[0].plot(part["step"], part[column], label=column, marker="." if len(part) < 30 else None)
    axes[0].set(title=f"{run.label}: training loss", xlabel="step", ylabel="loss")
    for column in vals:
        part = frame[["epoch", column]].dropna()
        axes[1].plot(part["epoch"], part[column], label=column, marker="o")
    axes[1].set(title=f"{run.label}: validation", xlabel="epoch")
    for ax in axes:
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(fontsize=7)
    return _save(fig, out / f"curves-{slug}.png")


def plot_comparison(runs: list[RunInfo], metric: str, out: Path) -> Path | None:
    """One metric's validation curve for every run that logged it, on shared axes."""
    fig, ax = plt.subplots(figsize=(6, 3.6))
    for run in runs:
        frame = read_curves(run)
        if frame is None or metric not in frame.columns:
            continue
        part = frame[["epoch", metric]].dropna()
        if len(part):
            ax.plot(part["epoch"], part[metric], label=run.label, marker="o")
    if not ax.lines:
        plt.close(fig)
        return None
    ax.set(title=f"{metric} by epoch", xlabel="epoch", ylabel=metric)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _save(fig, out / f"compare-{metric.replace('/', '_').replace('@', '_at_')}.png")
