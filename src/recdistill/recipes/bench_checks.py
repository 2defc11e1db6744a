"""The bench recipe's config work. Check a whole sweep before any trial runs: every key exists, every value
has the right type, and every combination composes into a valid config (a typo found after three hours of
trials is a wasted evening). And, for ``--apply-best``, which settings of the best trial differ from the
defaults."""

from __future__ import annotations

import importlib

from omegaconf import DictConfig, ListConfig, OmegaConf

from recdistill.config import compose
from recdistill.sweeps.grid import format_value
from recdistill.config.compose import config_groups
from recdistill.errors import ConfigError


def _type_error(key: str, value, default) -> str:
    return (f"{key}={value!r} has the wrong type: expected {type(default).__name__} "
            f"like the default ({default!r})")


def check_value_type(key: str, value, default, auto_keys=()) -> None:
    """The value a sweep gives must have the default's type (ints for ints, booleans for booleans...).

    A ``null`` default accepts anything, a string default accepts any scalar (``auto`` | true | false
    style knobs), a float default accepts ints, and keys in ``auto_keys`` also accept ``"auto"``.
    """
    if default is None or value is None:
        return
    if value == "auto" and key in auto_keys:
        return
    if isinstance(default, (DictConfig, dict)):
        raise ConfigError(f"{key} is a section, not a value; sweep its keys ({key}.<name>) or pick a group option")
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    elif isinstance(default, str):
        ok = not isinstance(value, (list, dict))
    elif isinstance(default, (list, ListConfig)):
        ok = isinstance(value, list)
    else:
        ok = True
    if not ok:
        raise ConfigError(_type_error(key, value, default))


def load_validator(target: str | None, section: str | None):
    """The workload's own config check (``module:function``), called with the composed config (or one
    section of it), so values the workload would refuse are refused before the sweep starts."""
    if not target:
        return None
    module_name, func_name = str(target).split(":")
    function = getattr(importlib.import_module(module_name), func_name)
    if section:
        return lambda cfg: function(cfg[section])
    return function


def validate_plan(root: str, keys: list[str], trials_overrides: list[list[str]], trials_settings: list[dict],
                  base_overrides: list[str], config_files: list[str], auto_keys=(), validator=None) -> DictConfig:
    """Compose every trial's config (and run ``validator`` on it); raise ConfigError naming the trial and
    the problem. Returns the default config (base overrides only) the values were checked against."""
    groups = set(config_groups())
    try:
        defaults = compose(root, base_overrides, config_files)
    except ConfigError as exc:
        raise ConfigError(f"the sweep's fixed overrides are not valid for '{root}': {exc}") from exc
    for key in keys:
        if key in groups:
            continue  # a group option (efficiency=none): compose checks the option names below
        if OmegaConf.select(defaults, key, default="__missing__") == "__missing__":
            try:  # let compose produce its message listing the valid keys
                compose(root, [*base_overrides, f"{key}=0"], config_files)
            except ConfigError as exc:
                raise ConfigError(f"grid key '{key}': {exc}") from exc
    for overrides, settings in zip(trials_overrides, trials_settings):
        for key, value in settings.items():
            if key not in groups:
                check_value_type(key, value, OmegaConf.select(defaults, key), auto_keys)
        try:
            cfg = compose(root, [*base_overrides, *overrides], config_files)
            if validator is not None:
                validator(cfg)
        except ConfigError as exc:
            raise ConfigError(f"trial {' '.join(overrides) or 'baseline'}: {exc}") from exc
    return defaults


def _flat(cfg: DictConfig, prefix: str) -> dict[str, object]:
    node = OmegaConf.select(cfg, prefix)
    if isinstance(node, DictConfig):
        container = OmegaConf.to_container(node, resolve=True)
        out: dict[str, object] = {}

        def walk(value, dotted):
            if isinstance(value, dict):
                for k, v in value.items():
                    walk(v, f"{dotted}.{k}")
            else:
                out[dotted] = value

        walk(container, prefix)
        return out
    return {prefix: OmegaConf.to_container(node) if OmegaConf.is_config(node) else node}


def settings_diff(root: str, settings: dict, keys: list[str]) -> dict[str, tuple[object, object]]:
    """``{dotted key: (default, best)}`` for the swept keys (whole sections for group choices) that differ."""
    defaults = compose(root)
    overrides = [f"{k}={format_value(v)}" for k, v in settings.items()]
    best = compose(root, overrides)
    diff: dict[str, tuple[object, object]] = {}
    for key in keys:
        new = _flat(best, key)  # a group choice (efficiency=none) compares its whole section
        old = _flat(defaults, key)
        for dotted, value in new.items():
            if old.get(dotted, object()) != value:
                diff[dotted] = (old.get(dotted), value)
    return diff
