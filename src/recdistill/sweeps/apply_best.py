"""``--apply-best METRIC``: pick the best trial and write its settings where later runs pick them up.

``METRIC`` is a table column, optionally with a direction and limits::

    fit_s                               # fastest fit (lower is better: inferred from the name)
    train_sequences_per_s               # highest training throughput (higher is better)
    val/ndcg@10                         # best quality
    fit_s,peak_rss_mb<=4000             # fastest within a memory limit
    throughput:max,peak_cuda_allocated_mb<=20000

Aliases: ``time`` (fit_s, else epoch_s), ``throughput`` (the training throughput column), ``memory``
(CUDA allocated if measured, else peak RSS), ``metric`` (the workload's quality metric).

Only keys the sweep varied are written, and only where the best value differs from the default; the
file is merged into an existing one (so a batch-size sweep and a precision sweep can both be applied).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import yaml

from recdistill.sweeps.grid import format_value
from recdistill.engine.rundir import atomic_write_text
from recdistill.errors import ConfigError

HIGHER_IS_BETTER = ("throughput", "_per_s", "ndcg", "hr@", "recall", "mrr", "precision@", "accuracy", "auc")
LOWER_IS_BETTER = ("_s", "_mb", "loss", "perplexity", "seconds")
_LIMIT = re.compile(r"^\s*([\w/@.\-]+)\s*(<=|>=|<|>)\s*([-+0-9.eE]+)\s*$")


def _resolve_column(name: str, rows: list[dict], metric: str | None) -> str:
    present = set().union(*(r.keys() for r in rows)) if rows else set()
    if name == "time":
        return "fit_s" if "fit_s" in present else "epoch_s"
    if name == "throughput":
        columns = sorted(c for c in present if c.startswith("train_") and c.endswith("_per_s"))
        if not rows:  # checking the syntax before the sweep: the columns are not known yet
            return name
        if not columns:
            raise ConfigError("no trial measured a training throughput; choose another metric")
        return columns[0]
    if name == "memory":
        return "peak_cuda_allocated_mb" if "peak_cuda_allocated_mb" in present else "peak_rss_mb"
    if name == "metric" and metric:
        return metric
    return name


def parse_spec(spec: str, rows: list[dict], metric: str | None) -> tuple[str, str, list[tuple[str, str, float]]]:
    """``"fit_s,peak_rss_mb<=4000"`` -> ("fit_s", "min", [("peak_rss_mb", "<=", 4000.0)])."""
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if not parts:
        raise ConfigError("--apply-best needs a metric, e.g. fit_s or train_sequences_per_s or 'fit_s,peak_rss_mb<=4000'")
    head, limits = parts[0], parts[1:]
    direction = None
    if ":" in head and head.rsplit(":", 1)[1] in ("min", "max"):
        head, direction = head.rsplit(":", 1)
    column = _resolve_column(head, rows, metric)
    if direction is None:
        if any(t in column for t in HIGHER_IS_BETTER):
            direction = "max"
        elif any(column.endswith(t) or t in column for t in LOWER_IS_BETTER):
            direction = "min"
        else:
            raise ConfigError(f"cannot tell whether higher or lower {column} is better; write {column}:min or {column}:max")
    parsed = []
    for limit in limits:
        match = _LIMIT.match(limit)
        if not match:
            raise ConfigError(f"--apply-best limit '{limit}' is not of the form column<=number (e.g. peak_rss_mb<=4000)")
        parsed.append((_resolve_column(match.group(1), rows, metric), match.group(2), float(match.group(3))))
    return column, direction, parsed


def _within(row: dict, limits) -> bool:
    for column, op, bound in limits:
        value = row.get(column)
        if not isinstance(value, (int, float)):
            return False
        if not {"<=": value <= bound, ">=": value >= bound, "<": value < bound, ">": value > bound}[op]:
            return False
    return True


def choose_best(rows: list[dict], spec: str, metric: str | None = None) -> tuple[dict, str, str]:
    """The best successful row under ``spec``; returns (row, column, direction)."""
    column, direction, limits = parse_spec(spec, rows, metric)
    present = set().union(*(r.keys() for r in rows)) if rows else set()
    if column not in present:
        numeric = sorted(k for k in present if any(isinstance(r.get(k), (int, float)) for r in rows) and k != "trial")
        raise ConfigError(f"--apply-best: no column '{column}' in this sweep; columns: {', '.join(numeric)}")
    candidates = [r for r in rows if r.get("status") == "ok" and isinstance(r.get(column), (int, float))
                  and _within(r, limits)]
    if not candidates:
        raise ConfigError(f"--apply-best {spec}: no successful trial has {column}"
                          + (" within the limits" if limits else ""))
    best = (min if direction == "min" else max)(candidates, key=lambda r: r[column])
    return best, column, direction


def _nest(flat: dict[str, object]) -> dict:
    out: dict = {}
    for dotted, value in flat.items():
        node = out
        parts = dotted.split(".")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = value
    return out


def _flatten_plain(tree: dict, prefix: str = "") -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in (tree or {}).items():
        dotted = f"{prefix}{key}"
        if isinstance(value, dict):
            out.update(_flatten_plain(value, dotted + "."))
        else:
            out[dotted] = value
    return out


def write_best(path: Path, diff: dict[str, tuple[object, object]], source: str) -> dict[str, object]:
    """Merge the best values into ``path`` (atomically) and return everything the file now sets."""
    existing: dict[str, object] = {}
    if path.is_file():
        try:
            existing = _flatten_plain(yaml.safe_load(path.read_text()) or {})
        except yaml.YAMLError as exc:
            raise ConfigError(f"cannot parse the existing best-settings file {path}: {exc}; fix or delete it") from exc
    merged = {**existing, **{k: new for k, (_, new) in diff.items()}}
    body = yaml.safe_dump(_nest(merged), sort_keys=False) if merged else "{}\n"
    head = (f"# Best settings written by {source} on {time.strftime('%Y-%m-%d %H:%M:%S')}.\n"
            "# Picked up by later runs of the same workload in this folder; explicit overrides still win.\n")
    atomic_write_text(path, head + body)
    return merged


def format_diff(diff: dict[str, tuple[object, object]]) -> str:
    if not diff:
        return "  (the best setting is the default; nothing to change)"
    return "\n".join(f"  {key}: {old!r} -> {new!r}" for key, (old, new) in diff.items())
