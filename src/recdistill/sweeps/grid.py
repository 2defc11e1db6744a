"""What a sweep runs: the trials from ``--grid key=v1,v2 ...`` or a sweep YAML file.

Two shapes:

* ``grid`` (default): every combination of the listed values, in the order given (the last key varies
  fastest), so ``--grid train.batch_size=64,128 efficiency.num_workers=0,2`` gives four trials.
* ``cumulative``: a list of steps, each adding its settings on top of the previous step's, the way
  torchtune tabulates its memory and speed knobs (baseline, + fused AdamW, + compile, ...).

A sweep file (YAML)::

    mode: grid                  # or cumulative
    grid:                       # mode: grid
      train.batch_size: [64, 128, 256]
      efficiency.num_workers: [0, 1]
    steps:                      # mode: cumulative; the first step is the baseline
      - {}                      # baseline = the defaults (plus overrides)
      - {efficiency.fused_adamw: true}
      - {efficiency.compile: true}
    overrides:                  # applied to every trial (before the swept values)
      train.limit_train_batches: 20

``--sweep NAME`` also finds the sweep files shipped in ``config/conf/bench/sweeps/``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from recdistill.config.compose import parse_value  # the same parsing as key=value overrides
from recdistill.errors import ConfigError

MODES = ("grid", "cumulative")


@dataclass
class Trial:
    """One process of a sweep."""

    index: int
    settings: dict[str, object]          # the swept keys and their values (parsed)
    overrides: list[str]                 # the same as ``key=value`` strings, as given to the CLI
    added: dict[str, object] = field(default_factory=dict)  # cumulative mode: what this step adds

    @property
    def name(self) -> str:
        if not self.settings:
            return "baseline"
        return " ".join(self.overrides)


@dataclass
class SweepPlan:
    mode: str
    keys: list[str]                      # swept keys in order
    trials: list[Trial]
    overrides: list[str] = field(default_factory=list)  # fixed overrides from the sweep file
    workload: str | None = None          # a sweep file may say which workload it is for


def format_value(value) -> str:
    """A value as the text of a ``key=value`` override that parses back to the same value."""
    if isinstance(value, str):
        # a string that YAML would read as another type ("32", "true", "null") must be quoted
        return value if yaml.safe_load(value) == value else yaml.safe_dump(value, default_style="'").strip()
    text = yaml.safe_dump(value, default_flow_style=True).strip()
    return text[:-4].strip() if text.endswith("...") else text


def _split_values(text: str) -> list[str]:
    """Split ``v1,v2`` on commas outside brackets and quotes (``[1,2],[3,4]`` is two values)."""
    parts, depth, quote, current = [], 0, None, []
    for ch in text:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in "[{(":
            depth += 1
        elif ch in "]})":
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(current).strip())
            current = []
            continue
        current.append(ch)
    parts.append("".join(current).strip())
    return parts


def parse_grid_args(items: list[str]) -> dict[str, list]:
    """``["a=1,2", "b=x"]`` -> ``{"a": [1, 2], "b": ["x"]}``, with errors that say how to write it."""
    grid: dict[str, list] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--grid entry '{item}' is not of the form key=v1,v2 (e.g. train.batch_size=64,128)")
        key, text = item.split("=", 1)
        key = key.strip()
        if not key:
            raise ConfigError(f"--grid entry '{item}' has an empty key")
        if key in grid:
            raise ConfigError(f"--grid lists '{key}' twice; give all its values in one entry: {key}=v1,v2")
        values = _split_values(text)
        if any(v == "" for v in values):
            raise ConfigError(f"--grid entry '{item}' has an empty value; write {key}=v1,v2 with no empty items")
        grid[key] = [parse_value(v) for v in values]
    return grid


def _check_grid(grid, where: str) -> dict[str, list]:
    if not isinstance(grid, dict) or not grid:
        raise ConfigError(f"{where}: the grid is empty; give at least one key with values (key=v1,v2)")
    out = {}
    for key, values in grid.items():
        values = values if isinstance(values, list) else [values]
        if not values:
            raise ConfigError(f"{where}: '{key}' has no values")
        out[str(key)] = values
    return out


def expand_grid(grid: dict[str, list], where: str = "--grid") -> SweepPlan:
    grid = _check_grid(grid, where)
    keys = list(grid)
    trials = []
    for i, combo in enumerate(itertools.product(*(grid[k] for k in keys))):
        settings = dict(zip(keys, combo))
        trials.append(Trial(i, settings, [f"{k}={format_value(v)}" for k, v in settings.items()]))
    return SweepPlan("grid", keys, trials)


def expand_cumulative(steps: list, where: str) -> SweepPlan:
    if not isinstance(steps, list) or not steps:
        raise ConfigError(f"{where}: mode cumulative needs a non-empty 'steps' list (the first is the baseline)")
    keys: list[str] = []
    settings: dict[str, object] = {}
    trials = []
    for i, step in enumerate(steps):
        step = step or {}
        if not isinstance(step, dict):
            raise ConfigError(f"{where}: step {i} must be a mapping of key: value, not {step!r}")
        for key in step:
            if str(key) not in keys:
                keys.append(str(key))
        settings = {**settings, **{str(k): v for k, v in step.items()}}
        overrides = [f"{k}={format_value(v)}" for k, v in settings.items()]
        trials.append(Trial(i, dict(settings), overrides, added={str(k): v for k, v in step.items()}))
    return SweepPlan("cumulative", keys, trials)


def shipped_sweeps() -> dict[str, Path]:
    folder = Path(str(resources.files("recdistill.config") / "conf" / "bench" / "sweeps"))
    return {p.stem: p for p in sorted(folder.glob("*.yaml"))} if folder.is_dir() else {}


def resolve_sweep_path(name_or_path: str) -> Path:
    path = Path(name_or_path)
    if path.is_file():
        return path
    shipped = shipped_sweeps()
    if name_or_path in shipped:
        return shipped[name_or_path]
    raise ConfigError(
        f"sweep file '{name_or_path}' not found; give a path or one of the shipped sweeps: "
        f"{', '.join(shipped) or '(none)'}"
    )


def load_sweep_file(name_or_path: str) -> SweepPlan:
    path = resolve_sweep_path(name_or_path)
    try:
        spec = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"cannot parse sweep file {path}: {exc}") from exc
    if not isinstance(spec, dict):
        raise ConfigError(f"sweep file {path} must hold a mapping (mode, grid or steps, overrides)")
    unknown = set(spec) - {"mode", "grid", "steps", "overrides", "description", "workload"}
    if unknown:
        raise ConfigError(f"sweep file {path}: unknown entries {sorted(unknown)}; "
                          "valid: mode, grid, steps, overrides, description, workload")
    mode = spec.get("mode", "grid")
    if mode not in MODES:
        raise ConfigError(f"sweep file {path}: mode={mode!r} is not valid; choose one of: {', '.join(MODES)}")
    plan = expand_grid(spec.get("grid"), str(path)) if mode == "grid" else expand_cumulative(spec.get("steps"), str(path))
    fixed = spec.get("overrides") or {}
    if not isinstance(fixed, dict):
        raise ConfigError(f"sweep file {path}: 'overrides' must be a mapping of key: value")
    plan.overrides = [f"{k}={format_value(v)}" for k, v in fixed.items()]
    plan.workload = spec.get("workload")
    return plan
