"""``recdistill bench WORKLOAD`` and ``recdistill bench report DIR``: the sweep's recipe. It composes the
``bench`` config, plans the trials and runs each as its own process (:mod:`recdistill.sweeps.trial`: a
trial is the workload's own command, so it runs that workload's recipe)."""

from __future__ import annotations

import signal
import time
from pathlib import Path

from recdistill.sweeps.applied import applied_config_files, applied_config_path
from recdistill.sweeps.apply_best import choose_best, format_diff, write_best
from recdistill.sweeps.grid import expand_grid, format_value, load_sweep_file, parse_grid_args
from recdistill.sweeps.sweep import base_overrides, load_sweep, render, rows_of, run_trials, write_plan
from recdistill.recipes.bench_checks import load_validator, settings_diff, validate_plan
from recdistill.config import compose, to_plain
from recdistill.errors import ConfigError


def _split_overrides(overrides: list[str]) -> tuple[list[str], list[str]]:
    """``bench.*`` overrides configure the sweep; the rest go to every trial."""
    bench = [o for o in overrides if o.split("=", 1)[0].lstrip("+").startswith("bench.")]
    return bench, [o for o in overrides if o not in bench]


def sweep_plan(args):
    if args.sweep and args.grid:
        raise ConfigError("give either --grid or --sweep, not both (put fixed values in the sweep file's overrides)")
    if args.sweep:
        plan = load_sweep_file(args.sweep)
        if plan.workload and plan.workload != args.workload:
            raise ConfigError(f"sweep file {args.sweep} is for the {plan.workload} workload, not {args.workload}")
        return plan
    if not args.grid:
        raise ConfigError("nothing to sweep: give --grid key=v1,v2 [key=v1,v2 ...] or --sweep FILE")
    grid = parse_grid_args(args.grid)
    # `--grid` swallows the trailing key=value words; a single-valued entry among swept ones is a fixed
    # setting (the same for every trial), so it goes with the overrides instead of becoming a column.
    if any(len(v) > 1 for v in grid.values()):
        fixed = {k: v[0] for k, v in grid.items() if len(v) == 1}
        plan = expand_grid({k: v for k, v in grid.items() if k not in fixed})
        plan.overrides = [f"{k}={format_value(v)}" for k, v in fixed.items()]
        return plan
    return expand_grid(grid)


def _exit_on_sigterm(signum, frame):
    raise SystemExit(128 + signum)  # unwinds through run_trial, which stops the running trial


def bench_command(args) -> int:
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    workload = args.workload
    bench_overrides, trial_overrides = _split_overrides(list(args.overrides))
    bench = to_plain(compose("bench", [f"bench={workload}", *bench_overrides]).bench)
    plan = sweep_plan(args)
    config_files = [str(p) for p in applied_config_files(workload)] + [str(Path(c).resolve()) for c in args.config]
    base = base_overrides(bench, plan, trial_overrides)
    validate_plan(str(bench["config_root"]), plan.keys, [t.overrides for t in plan.trials],
                  [t.settings for t in plan.trials], base, config_files, tuple(bench["auto_keys"] or ()),
                  load_validator(bench.get("validate"), bench.get("validate_section")))
    if args.apply_best:  # check the metric's syntax now, not after the sweep
        from recdistill.sweeps.apply_best import parse_spec
        parse_spec(args.apply_best, [], bench["metric"])
    out = Path(args.out or f"bench_runs/{workload}-{time.strftime('%Y%m%d-%H%M%S')}")
    out.mkdir(parents=True, exist_ok=True)
    spec = write_plan(out, workload, bench, plan, base, config_files)
    print(f"bench {workload}: {len(plan.trials)} trial(s), {plan.mode} over {', '.join(plan.keys)} -> {out}")
    records = run_trials(out, spec, bench)
    for path in render(out):
        print(f"wrote {path}")
    failed = [r for r in records if r.get("status") != "ok"]
    print(f"{len(records) - len(failed)} trial(s) ok, {len(failed)} failed; table: {out / 'table.md'}")
    if args.apply_best:
        apply_best(out, spec, records, args.apply_best, workload, bench)
    return 0


def apply_best(out: Path, spec: dict, records: list[dict], metric_spec: str, workload: str, bench) -> Path:
    rows = rows_of(spec, records)
    best, column, direction = choose_best(rows, metric_spec, spec.get("metric"))
    diff = settings_diff(str(bench["config_root"]), best_settings(spec, best["trial"]), spec["keys"])
    path = applied_config_path(workload)  # where later runs look: ./ or $RECDISTILL_CONFIG_DIR
    source = f"recdistill bench {workload} --apply-best {metric_spec} (trial {best['trial']} of {out})"
    merged = write_best(path, diff, source)
    print(f"best by {column} ({direction}): trial {best['trial']} [{best.get('name')}] with {column}={best[column]}")
    print(f"changes against the defaults:\n{format_diff(diff)}")
    print(f"wrote {path} ({len(merged)} setting(s)); later `recdistill {' '.join(spec['command'])}` runs "
          "in this folder pick it up")
    return path


def best_settings(spec: dict, trial: int) -> dict:
    for t in spec["trials"]:
        if t["trial"] == trial:
            return t["settings"]
    raise ConfigError(f"trial {trial} is not in the sweep plan")


def report_command(args) -> int:
    out = Path(args.dir)
    load_sweep(out)  # a clear error when the folder is not a sweep
    for path in render(out):
        print(f"wrote {path}")
    return 0
