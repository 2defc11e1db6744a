"""Markdown and CSV tables of a sweep.

* ``table.md``: one row per trial, every measured column shown with its change against the baseline row.
* ``cumulative.md`` (sweeps in ``cumulative`` mode): the knob each step adds, with the change against the
  baseline and against the previous step, as torchtune tabulates its memory and speed knobs.
* ``table.csv``: the same rows, raw numbers, for spreadsheets and pandas.
"""

from __future__ import annotations

import csv
import io

from recdistill.sweeps.records import MEMORY_KEYS

TIME_COLUMNS = ("fit_s", "epoch_s", "val_s", "test_s", "export_s")
HEADERS = {
    "fit_s": "fit s",
    "epoch_s": "epoch s",
    "val_s": "validation s",
    "test_s": "test s",
    "export_s": "export s",
    "peak_rss_mb": "peak RSS MB",
    "peak_cuda_allocated_mb": "CUDA alloc MB",
    "peak_cuda_reserved_mb": "CUDA reserved MB",
    "batch_size_found": "batch size used",
    "trial_wall_s": "process s",
}


def header(column: str) -> str:
    if column in HEADERS:
        return HEADERS[column]
    if column.endswith("_per_s") and column.startswith(("train_", "test_")):
        split, unit = column.split("_", 1)
        return f"{split} {unit[: -len('_per_s')].replace('_', ' ')}/s"
    return column


def measured_columns(rows: list[dict], metric: str | None) -> list[str]:
    """Numeric columns that get a change-vs-baseline, in reading order."""
    present = set().union(*(r.keys() for r in rows)) if rows else set()
    columns = [c for c in TIME_COLUMNS if c in present]
    columns += sorted(c for c in present if c.startswith("train_") and c.endswith("_per_s"))
    columns += sorted(c for c in present if c.startswith("test_") and c.endswith("_per_s"))
    columns += [c for c in MEMORY_KEYS if c in present]
    if metric and metric in present:
        columns.append(metric)
    return columns


def _fmt(value) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, float):
        if abs(value) >= 100:
            return f"{value:,.0f}"
        if abs(value) >= 1:
            return f"{value:.2f}"
        return f"{value:.4f}"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10000 else str(value)
    return str(value).replace("|", "\\|").replace("\n", " ")


def change(value, base) -> str:
    """``+12%`` / ``-3.4%`` of ``value`` against ``base``; empty when either is missing or base is 0."""
    if not isinstance(value, (int, float)) or not isinstance(base, (int, float)) or base == 0:
        return ""
    pct = 100.0 * (value - base) / abs(base)
    return f"{pct:+.0f}%" if abs(pct) >= 10 else f"{pct:+.1f}%"


def _cell(row: dict, column: str, base: dict | None) -> str:
    text = _fmt(row.get(column))
    if text and base is not None and base is not row:
        delta = change(row.get(column), base.get(column))
        if delta:
            text += f" ({delta})"
    return text


def _markdown(headers: list[str], lines: list[list[str]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    out += ["| " + " | ".join(cells) + " |" for cells in lines]
    return "\n".join(out) + "\n"


def baseline_row(rows: list[dict], baseline_trial: int = 0) -> dict | None:
    for row in rows:
        if row["trial"] == baseline_trial:
            return row if row.get("status") == "ok" else None
    return None


def trial_table(rows: list[dict], keys: list[str], metric: str | None, baseline_trial: int = 0) -> str:
    """One row per trial; measured columns carry ``(±x%)`` against the baseline trial."""
    base = baseline_row(rows, baseline_trial)
    measured = measured_columns(rows, metric)
    extra = [c for c in ("batch_size_found",) if any(c in r for r in rows)]
    headers = ["trial", *keys, "status", *[header(c) for c in measured], *[header(c) for c in extra], "note"]
    lines = []
    for row in rows:
        cells = [str(row["trial"]) + (" (baseline)" if base is row else "")]
        cells += [_fmt(row.get(k)) for k in keys]
        cells.append(row.get("status", ""))
        cells += [_cell(row, c, base) for c in measured]
        cells += [_fmt(row.get(c)) for c in extra]
        cells.append(_fmt(row.get("reason", "")))
        lines.append(cells)
    return _markdown(headers, lines)


def cumulative_table(rows: list[dict], added: dict[int, dict], metric: str | None) -> str:
    """Each step adds knobs to the previous; columns: value, change vs baseline, change vs previous."""
    # one column each: time, training throughput (first unit), memory, quality
    present = measured_columns(rows, metric)
    time_col = next((c for c in ("fit_s", "epoch_s") if c in present), None)
    rate_col = next((c for c in present if c.startswith("train_")), None)
    mem_col = next((c for c in ("peak_cuda_allocated_mb", "peak_rss_mb") if c in present), None)
    measured = [c for c in (time_col, rate_col, mem_col, metric) if c and c in present]
    headers = ["step", "adds", "status"]
    for column in measured:
        headers += [header(column), "vs baseline", "vs previous"]
    headers.append("note")
    base = rows[0] if rows and rows[0].get("status") == "ok" else None
    lines, previous = [], None
    for row in rows:
        knobs = added.get(row["trial"], {})
        adds = ", ".join(f"{k}={_fmt(v)}" for k, v in knobs.items()) or "baseline"
        cells = [str(row["trial"]), adds, row.get("status", "")]
        for column in measured:
            value = row.get(column)
            cells.append(_fmt(value))
            cells.append(change(value, base.get(column)) if base is not None and row is not base else "")
            cells.append(change(value, previous.get(column)) if previous is not None else "")
        cells.append(_fmt(row.get("reason", "")))
        lines.append(cells)
        if row.get("status") == "ok":
            previous = row
    return _markdown(headers, lines)


def to_csv(rows: list[dict]) -> str:
    columns: list[str] = []
    for row in rows:
        for key in row:
            if key not in columns:
                columns.append(key)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: row.get(k, "") for k in columns})
    return buffer.getvalue()


def environment_lines(env: dict) -> str:
    if not env:
        return ""
    parts = [f"{k}: {v}" for k, v in env.items() if v is not None]
    return "Environment: " + "; ".join(parts) + "\n"
