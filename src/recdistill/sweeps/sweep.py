"""A sweep folder: its plan, running its trials, and rendering its tables and plots.

``<out>/``
    ``sweep.json``     the plan: workload, command, mode, swept keys, trials and their overrides
    ``results.jsonl``  one record per finished trial (appended; a resumed sweep appends again)
    ``trials/<n>/``    trial n's ``paths.runs_dir``: its run folder, ``stdout.log``, ``stderr.log``
    ``table.md``, ``table.csv``, ``cumulative.md`` (cumulative mode), ``plots/*.png``
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from tqdm.auto import tqdm

from recdistill.sweeps import plots, tables
from recdistill.sweeps.grid import SweepPlan, format_value
from recdistill.sweeps.records import append_record, environment_summary, flatten, latest_per_trial, read_records
from recdistill.sweeps.trial import run_trial, trial_command
from recdistill.engine.rundir import atomic_write_json, atomic_write_text
from recdistill.errors import ConfigError


def base_overrides(bench: dict, plan: SweepPlan, cli_overrides: list[str]) -> list[str]:
    """Overrides every trial gets, weakest first: the bench's bounds, the sweep file's, the command line's."""
    bounds = dict(bench["trial_overrides"] or {})
    return dedupe_overrides([f"{k}={format_value(v)}" for k, v in bounds.items()] + list(plan.overrides)
                            + list(cli_overrides))


def dedupe_overrides(overrides: list[str]) -> list[str]:
    """Keep the last ``key=value`` of each key (the one that wins), in first-seen order."""
    last: dict[str, str] = {}
    for item in overrides:
        last[item.split("=", 1)[0]] = item
    return list(last.values())


def write_plan(out: Path, workload: str, bench: dict, plan: SweepPlan, base: list[str],
               config_files: list[str]) -> dict:
    spec = {
        "workload": workload,
        "command": list(bench["command"]),
        "config_root": str(bench["config_root"]),
        "mode": plan.mode,
        "keys": plan.keys,
        "base_overrides": base,
        "config_files": [str(p) for p in config_files],
        "metric": bench["metric"],
        "baseline_trial": int(bench.get("baseline_trial") or 0),
        "trials": [{"trial": t.index, "name": t.name, "settings": t.settings, "overrides": t.overrides,
                    "added": t.added} for t in plan.trials],
    }
    previous = out / "sweep.json"
    if previous.is_file():
        old = json.loads(previous.read_text())
        if [t["overrides"] for t in old.get("trials", [])] != [t["overrides"] for t in spec["trials"]] or \
                old.get("base_overrides") != base or old.get("workload") != workload:
            raise ConfigError(f"{out} already holds a different sweep; choose another --out folder "
                              "(or the same grid and overrides to resume it)")
    spec["created"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    atomic_write_json(previous, spec)
    return spec


def run_trials(out: Path, spec: dict, bench: dict, cwd: str | None = None) -> list[dict]:
    """Run every trial not already finished (status ok) in ``out``; return all records."""
    done = {int(r["trial"]): r for r in latest_per_trial(read_records(out / "results.jsonl"))
            if r.get("status") == "ok"}
    todo = [t for t in spec["trials"] if t["trial"] not in done or done[t["trial"]]["overrides"] != t["overrides"]]
    if len(todo) < len(spec["trials"]):
        tqdm.write(f"resuming: {len(spec['trials']) - len(todo)} trial(s) already done in {out}")
    for trial in tqdm(todo, desc=f"bench {spec['workload']}", unit="trial"):
        trial_dir = out / "trials" / str(trial["trial"])
        overrides = [*spec["base_overrides"], *trial["overrides"], f"paths.runs_dir={trial_dir.resolve()}"]
        argv = trial_command(spec["command"], overrides, spec["config_files"])
        outcome = run_trial(argv, trial_dir, float(bench["timeout_s"]), cwd=cwd)
        record = {
            "trial": trial["trial"],
            "name": trial["name"],
            "settings": trial["settings"],
            "overrides": trial["overrides"],
            "status": outcome.status,
            "reason": outcome.reason,
            "returncode": outcome.returncode,
            "wall_seconds": outcome.wall_seconds,
            "run_dir": str(outcome.run_dir) if outcome.run_dir else None,
            "batch_size": outcome.batch_size,
            "metrics": outcome.metrics,
            "stages": outcome.stages,
            "environment": outcome.environment,
            "command": argv,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
        }
        append_record(out / "results.jsonl", record)
        line = f"trial {trial['trial']} [{trial['name']}]: {outcome.status} in {outcome.wall_seconds:.1f} s"
        tqdm.write(line + (f" ({outcome.reason})" if outcome.reason else ""))
    return latest_per_trial(read_records(out / "results.jsonl"))


def load_sweep(out: Path) -> tuple[dict, list[dict]]:
    spec_path = out / "sweep.json"
    if not spec_path.is_file():
        raise ConfigError(f"{out} is not a sweep folder (no sweep.json); give the folder `recdistill bench` wrote")
    return json.loads(spec_path.read_text()), latest_per_trial(read_records(out / "results.jsonl"))


def rows_of(spec: dict, records: list[dict]) -> list[dict]:
    return [flatten(r, spec.get("metric")) for r in records]


def render(out: Path) -> list[Path]:
    """(Re)write table.md, table.csv, cumulative.md and plots from sweep.json and results.jsonl."""
    spec, records = load_sweep(out)
    rows = rows_of(spec, records)
    keys, metric = spec["keys"], spec.get("metric")
    written = []
    title = f"recdistill bench {spec['workload']}"
    intro = [
        f"# {title}: {len(rows)} of {len(spec['trials'])} trials ({spec['mode']})\n",
        f"Each trial ran `recdistill {' '.join(spec['command'])}` in its own process with "
        f"`{' '.join(dedupe_overrides(spec['base_overrides'])) or '(no fixed overrides)'}`"
        + (f" and config files {', '.join(spec['config_files'])}" if spec["config_files"] else "") + ".",
        "Seconds are wall-clock per stage (epoch includes its validation); throughput excludes the warm-up "
        "steps and counts the unit named in the column; peak RSS is the trial process's resident memory.",
        "Values in brackets: change against the baseline trial.\n",
        tables.environment_lines(environment_summary(records)),
    ]
    plot_paths = plots.plot_sweep(rows, keys, spec["mode"], out / "plots", title) if rows else []
    body = tables.trial_table(rows, keys, metric, int(spec.get("baseline_trial", 0)))
    links = "\n".join(f"![{p.stem}](plots/{p.name})" for p in plot_paths)
    written.append(atomic_write_text(out / "table.md", "\n".join(intro) + "\n" + body + "\n" + links + "\n"))
    written.append(atomic_write_text(out / "table.csv", tables.to_csv(rows)))
    if spec["mode"] == "cumulative":
        added = {t["trial"]: t["added"] for t in spec["trials"]}
        text = (f"# {title}: knobs added one at a time\n\n" + tables.environment_lines(environment_summary(records))
                + "\n" + tables.cumulative_table(rows, added, metric))
        written.append(atomic_write_text(out / "cumulative.md", text))
    return written + plot_paths
