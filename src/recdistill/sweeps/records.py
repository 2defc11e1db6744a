"""Trial records (one JSON line per trial in ``<sweep>/results.jsonl``) and the flat rows tables are made of.

A record keeps everything the trial's run folder said (stages, metrics, environment) so tables can be
re-rendered later; a row picks the columns a reader compares: seconds per stage, throughput with its unit,
peak memory, the quality metric, and why a trial failed.
"""

from __future__ import annotations

import json
from pathlib import Path

from recdistill.engine.rundir import append_jsonl

STATUS_OK = "ok"

# Stage columns: (column, how stage names match). Epoch and validation are averaged over their repeats.
STAGE_COLUMNS = (
    ("fit_s", lambda name: name == "fit", "sum"),
    ("epoch_s", lambda name: name.startswith("epoch_"), "mean"),
    ("val_s", lambda name: name.startswith("validation_"), "mean"),
    ("test_s", lambda name: name == "test", "sum"),
    ("export_s", lambda name: name == "export", "sum"),
)
MEMORY_KEYS = ("peak_rss_mb", "peak_cuda_allocated_mb", "peak_cuda_reserved_mb")


def read_records(path: str | Path) -> list[dict]:
    path = Path(path)
    if not path.is_file():
        return []
    records = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line:
                records.append(json.loads(line))
    return records


def latest_per_trial(records: list[dict]) -> list[dict]:
    """A resumed sweep may hold a trial twice; keep the last record of each, ordered by trial index."""
    by_index: dict[int, dict] = {}
    for record in records:
        by_index[int(record["trial"])] = record
    return [by_index[i] for i in sorted(by_index)]


def append_record(path: str | Path, record: dict) -> None:
    append_jsonl(path, record)


def _stage_value(stages: list[dict], match, how: str) -> float | None:
    values = [float(s["seconds"]) for s in stages if match(str(s.get("stage", ""))) and "seconds" in s]
    if not values:
        return None
    return round(sum(values) / len(values) if how == "mean" else sum(values), 3)


def throughput_units(stage: dict) -> list[str]:
    return [k[: -len("_per_second")] for k in stage if k.endswith("_per_second")]


def _fit_stage(stages: list[dict]) -> dict | None:
    for stage in stages:
        if stage.get("stage") == "fit":
            return stage
    epochs = [s for s in stages if str(s.get("stage", "")).startswith("epoch_")]
    return epochs[-1] if epochs else None


def flatten(record: dict, metric: str | None = None) -> dict:
    """The row of a table for one trial record."""
    row: dict = {"trial": record["trial"], "name": record.get("name", "")}
    for key, value in (record.get("settings") or {}).items():
        row[key] = value
    row["status"] = record.get("status", "")
    stages = record.get("stages") or []
    for column, match, how in STAGE_COLUMNS:
        value = _stage_value(stages, match, how)
        if value is not None:
            row[column] = value
    fit = _fit_stage(stages)
    if fit is not None:
        for unit in throughput_units(fit):
            row[f"train_{unit}_per_s"] = fit[f"{unit}_per_second"]
    test = next((s for s in stages if s.get("stage") == "test"), None)
    if test is not None:
        for unit in throughput_units(test):
            row[f"test_{unit}_per_s"] = test[f"{unit}_per_second"]
    for key in MEMORY_KEYS:
        values = [s[key] for s in stages if isinstance(s.get(key), (int, float))]
        if values:
            row[key] = max(values)
    # every numeric metric (the tables show the workload's chosen one; CSV and --apply-best see all)
    for key, value in (record.get("metrics") or {}).items():
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            row[key] = value
    if record.get("batch_size") is not None and row["status"] == "ok":
        row["batch_size_found"] = record["batch_size"]
    row["trial_wall_s"] = record.get("wall_seconds")
    if record.get("reason"):
        row["reason"] = record["reason"]
    return row


def environment_summary(records: list[dict]) -> dict:
    """The environment of the first trial that reported one (device, threads, versions)."""
    for record in records:
        env = record.get("environment")
        if env:
            packages = env.get("packages") or {}
            return {
                "device": env.get("device"),
                "torch_threads": env.get("torch_threads"),
                "cpu_count": env.get("cpu_count"),
                "torch": packages.get("torch"),
                "lightning": packages.get("lightning"),
                "transformers": packages.get("transformers"),
                "python": env.get("python"),
            }
    return {}
