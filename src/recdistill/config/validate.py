"""Small checks for config values; each raises ConfigError naming the key and what is allowed."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from recdistill.errors import ConfigError


def _get(cfg: DictConfig, key: str):
    return OmegaConf.select(cfg, key, throw_on_missing=False)


def check_choice(cfg: DictConfig, key: str, options) -> None:
    value = _get(cfg, key)
    if value not in options:
        raise ConfigError(f"{key}={value!r} is not valid; choose one of: {', '.join(map(str, options))}")


def check_positive(cfg: DictConfig, key: str, allow_zero: bool = False, allow: tuple = ()) -> None:
    value = _get(cfg, key)
    if value in allow:
        return
    ok = isinstance(value, (int, float)) and not isinstance(value, bool)
    ok = ok and (value >= 0 if allow_zero else value > 0)
    if not ok:
        what = "a number >= 0" if allow_zero else "a number > 0"
        extra = f" or one of {', '.join(map(str, allow))}" if allow else ""
        raise ConfigError(f"{key}={value!r} is not valid; expected {what}{extra}")


def check_range(cfg: DictConfig, key: str, low: float, high: float) -> None:
    value = _get(cfg, key)
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not (low <= value <= high):
        raise ConfigError(f"{key}={value!r} is not valid; expected a number in [{low}, {high}]")
