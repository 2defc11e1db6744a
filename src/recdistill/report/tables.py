"""Markdown tables for the report: metrics side by side with their change, time and memory per stage,
the environment."""

from __future__ import annotations

import re

from recdistill.report.format import is_integer_metric, percent
from recdistill.report.runs import RunInfo

SPLIT_ORDER = {"val": 0, "test": 1}
_KEY = re.compile(r"^(?P<split>[^/]+)/(?P<name>[^@]+?)(?:@(?P<k>\d+))?$")


def _metric_sort_key(key: str):
    m = _KEY.match(key)
    if not m:
        return (9, key, 0)
    return (SPLIT_ORDER.get(m["split"], 5), m["split"], m["name"], int(m["k"] or 0))


def _fmt(value: float | None, digits: int = 4, key: str = "") -> str:
    if value is None:
        return "–"
    if is_integer_metric(key) or (float(value).is_integer() and abs(value) > 1):  # counts and epochs
        return f"{value:,.0f}"
    if key.endswith("coverage"):
        return percent(value)
    return f"{value:.{digits}f}"


def _change(new: float | None, base: float | None, key: str = "") -> str:
    if new is None or base is None:
        return "–"
    diff = new - base
    if is_integer_metric(key):
        return f"{diff:+,.0f}"  # a count's change, never a percentage
    rel = f" ({diff / base:+.1%})" if base else ""
    return f"{diff:+.4f}{rel}"


def markdown_table(header: list[str], rows: list[list[str]], align: list[str] | None = None) -> str:
    align = align or ["l"] + ["r"] * (len(header) - 1)
    marks = [":---" if a == "l" else "---:" for a in align]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(marks) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def is_main_metric(key: str) -> bool:
    """The rows of the main table: full-catalogue and candidate metrics at 10 and 20; the rest (other
    cut-offs, the sampled protocol, counts) go to the table of all metrics."""
    m = _KEY.match(key)
    if not m or "sampled" in m["name"]:
        return False
    return m["k"] in ("10", "20") or m["name"].startswith("cand")


def metrics_table(runs: list[RunInfo], baseline: RunInfo | None, compared: list[RunInfo],
                  only=lambda key: True) -> str:
    """Every numeric metric of every run (that ``only`` accepts) as a row, one column per run, then the
    change of each run in ``compared`` against ``baseline`` (absolute and relative)."""
    keys = sorted({k for run in runs for k in run.numeric_metrics if only(k)}, key=_metric_sort_key)
    if not keys:
        return "_No metrics recorded (metrics.json missing or empty)._"
    # a change column only where the run shares at least one metric with the baseline
    compared = [run for run in compared if baseline and set(run.numeric_metrics) & set(baseline.numeric_metrics)]
    header = ["metric"] + [run.label for run in runs]
    header += [f"{run.label} vs {baseline.label}" for run in compared] if baseline else []
    rows = []
    for key in keys:
        row = [f"`{key}`"] + [_fmt(run.numeric_metrics.get(key), key=key) for run in runs]
        if baseline:
            row += [_change(run.numeric_metrics.get(key), baseline.numeric_metrics.get(key), key) for run in compared]
        rows.append(row)
    return markdown_table(header, rows)


def _group_stage_records(records: list[dict]) -> list[tuple[str, list[dict]]]:
    """Fold ``epoch_0, epoch_1, ...`` and ``validation_0, ...`` into one row each; keep the rest."""
    groups: dict[str, list[dict]] = {}
    for record in records:
        name = str(record.get("stage", "?"))
        base = re.sub(r"_\d+$", "", name) if re.match(r"^(epoch|validation)_\d+$", name) else name
        groups.setdefault(base, []).append(record)
    return list(groups.items())


def _throughput(record: dict) -> str:
    for key, value in record.items():
        if key.endswith("_per_second") and isinstance(value, (int, float)):
            return f"{value:,.1f} {key[: -len('_per_second')]}/s"
    return "–"


def _peak(records: list[dict], key: str) -> float | None:
    values = [r[key] for r in records if isinstance(r.get(key), (int, float))]
    return max(values) if values else None


def stages_table(runs: list[RunInfo]) -> str:
    """Time, throughput and peak memory per measured stage of each run. Repeated stages (epochs,
    validations) show their count, mean and total seconds."""
    rows = []
    for run in runs:
        for name, records in _group_stage_records(run.stages):
            seconds = [float(r.get("seconds", 0.0)) for r in records]
            total = sum(seconds)
            if len(records) > 1:
                label, mean = f"{name} ×{len(records)}", total / len(records)
                time = f"{mean:.2f} mean, {total:.1f} total"
                throughput = _throughput(records[-1]) + " (last)"
            else:
                label, time, throughput = name, f"{total:.2f}", _throughput(records[0])
            rss = _peak(records, "peak_rss_mb")
            cuda = _peak(records, "peak_cuda_allocated_mb")
            rows.append([run.label, label, time, throughput,
                         "–" if rss is None else f"{rss:,.0f}", "–" if cuda is None else f"{cuda:,.0f}"])
    if not rows:
        return "_No stage measurements recorded (stages.json missing or empty)._"
    return markdown_table(["run", "stage", "seconds", "throughput", "peak RSS MB", "peak CUDA MB"], rows,
                          ["l", "l", "r", "r", "r", "r"])


def pipeline_stages_table(manifest: dict) -> str:
    """Wall time of each pipeline stage as the pipeline measured it (loading included), and its status."""
    rows = []
    for name, entry in (manifest.get("stages") or {}).items():
        if name == "report":
            continue  # this page is being written by it
        seconds, cpu = entry.get("seconds"), entry.get("cpu_seconds")
        rows.append([name, entry.get("status", "?"), "–" if seconds is None else f"{seconds:.1f}",
                     "–" if cpu is None else f"{cpu:.1f}",
                     "–" if entry.get("peak_rss_mb") is None else f"{entry['peak_rss_mb']:,.0f}",
                     f"`{entry.get('key', '')}`"])
    return markdown_table(["stage", "status", "wall seconds", "CPU seconds", "peak RSS MB", "config key"], rows,
                          ["l", "l", "r", "r", "r", "l"])


ENV_FIELDS = ("device", "python", "platform", "cpu_count", "torch_threads", "cuda_version", "gpu_count",
              "bf16_supported")


def environment_table(runs: list[RunInfo]) -> str:
    """The environment of each run; one column when all runs share it."""
    envs = [run.environment for run in runs if run.environment]
    if not envs:
        return "_No environment recorded (environment.json missing)._"
    distinct = []
    for run in runs:
        if run.environment and run.environment not in [e for _, e in distinct]:
            distinct.append((run.label, run.environment))
    header = ["", "all runs"] if len(distinct) == 1 else [""] + [label for label, _ in distinct]
    fields = [f for f in ENV_FIELDS if any(f in env for _, env in distinct)]
    rows = [[f] + [str(env.get(f, "–")) for _, env in distinct] for f in fields]
    packages = sorted({p for _, env in distinct for p in (env.get("packages") or {})})
    rows += [[p] + [str((env.get("packages") or {}).get(p) or "–") for _, env in distinct] for p in packages]
    return markdown_table(header, rows, ["l"] * len(header))
