"""PNG plots of a sweep (matplotlib, no display needed): time, throughput and peak memory per setting.

Failed trials keep their place on the axis with the word "failed", so a gap is never mistaken for zero.
A grid over exactly two keys also gets ``grid_<column>.png``: one line per value of the second key.
"""

from __future__ import annotations

from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never open a window
import matplotlib.pyplot as plt  # noqa: E402

from recdistill.sweeps.tables import header  # noqa: E402


def short_label(row: dict, keys: list[str]) -> str:
    parts = [f"{k.split('.')[-1]}={row.get(k)}" for k in keys if k in row]
    return " ".join(parts) if parts else f"trial {row['trial']}"


def _bar_plot(rows: list[dict], keys: list[str], column: str, title: str, path: Path) -> Path:
    labels = [short_label(r, keys) for r in rows]
    values = [r.get(column) if r.get("status") == "ok" else None for r in rows]
    height = max(2.0, 0.35 * len(rows) + 1.2)
    fig, ax = plt.subplots(figsize=(6.4, height), dpi=90)
    positions = list(range(len(rows)))
    ax.barh(positions, [v or 0 for v in values], color=["#4c72b0" if v is not None else "#dddddd" for v in values])
    top = max([v for v in values if v is not None] or [1.0])
    for pos, value, row in zip(positions, values, rows):
        text = f"{value:.3g}" if value is not None else (row.get("status") or "failed")
        ax.text((value or 0) + top * 0.01, pos, text, va="center", fontsize=8)
    ax.set_yticks(positions)
    ax.set_yticklabels(labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, top * 1.18)
    ax.set_xlabel(header(column))
    ax.set_title(title, fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


def _grid_plot(rows: list[dict], keys: list[str], column: str, path: Path) -> Path | None:
    x_key, line_key = keys
    x_values = list(dict.fromkeys(r.get(x_key) for r in rows))
    if not all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in x_values):
        x_positions = {x: i for i, x in enumerate(x_values)}
    else:
        x_positions = {x: x for x in x_values}
    fig, ax = plt.subplots(figsize=(6.4, 3.6), dpi=90)
    drew = False
    for line_value in dict.fromkeys(r.get(line_key) for r in rows):
        points = [(x_positions[r.get(x_key)], r.get(column)) for r in rows
                  if r.get(line_key) == line_value and r.get("status") == "ok" and r.get(column) is not None]
        if points:
            xs, ys = zip(*points)
            ax.plot(xs, ys, marker="o", label=f"{line_key.split('.')[-1]}={line_value}")
            drew = True
    if not drew:
        plt.close(fig)
        return None
    if any(not isinstance(x, (int, float)) for x in x_values):
        ax.set_xticks(list(x_positions.values()))
        ax.set_xticklabels([str(x) for x in x_positions], fontsize=8)
    elif len(x_values) > 2 and min(x_values) > 0 and max(x_values) / min(x_values) >= 8:
        ax.set_xscale("log", base=2)
        ax.set_xticks(x_values)
        ax.set_xticklabels([str(x) for x in x_values])
    ax.set_xlabel(x_key)
    ax.set_ylabel(header(column))
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return path


RATE_UNITS = ("sequences", "samples", "tokens")  # the unit plotted first when a stage counts several


def pick_rate(present: set, prefix: str) -> str | None:
    rates = sorted(c for c in present if c.startswith(prefix) and c.endswith("_per_s"))
    for unit in RATE_UNITS:
        if f"{prefix}{unit}_per_s" in rates:
            return f"{prefix}{unit}_per_s"
    return rates[0] if rates else None


def plot_sweep(rows: list[dict], keys: list[str], mode: str, out_dir: Path, title: str) -> list[Path]:
    """Write the plots into ``out_dir`` and return their paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    present = set().union(*(r.keys() for r in rows)) if rows else set()
    wanted = []
    time_column = "fit_s" if "fit_s" in present else "epoch_s" if "epoch_s" in present else None
    if time_column:
        wanted.append(("time", time_column))
    for name, prefix in (("throughput", "train_"), ("test_throughput", "test_")):
        column = pick_rate(present, prefix)
        if column:
            wanted.append((name, column))
    for key in ("peak_cuda_allocated_mb", "peak_rss_mb"):
        if key in present:
            wanted.append(("memory", key))
            break
    paths = []
    for name, column in wanted:
        paths.append(_bar_plot(rows, keys, column, f"{title}: {header(column)}", out_dir / f"{name}.png"))
        if mode == "grid" and len(keys) == 2:
            grid_path = _grid_plot(rows, keys, column, out_dir / f"grid_{name}.png")
            if grid_path:
                paths.append(grid_path)
    return paths
