"""Small checks for config values; each raises ConfigError naming the key and what is allowed."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

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


def check_writable_folders(cfg: DictConfig, keys) -> None:
    """Each of ``keys`` (when set) names a folder that exists or can be made, and that can be written:
    a file there, or a read-only place, is a ConfigError now rather than a ``NotADirectoryError`` or
    ``PermissionError`` once a run is under way. Writing is probed with a temporary file in the nearest
    folder that exists (the only test that also covers read-only mounts and root's permissions)."""
    for key in keys:
        value = _get(cfg, key)
        if value is None:
            continue
        path = Path(os.path.expanduser(str(value)))
        existing = path
        while not existing.exists() and existing != existing.parent:
            existing = existing.parent
        if not existing.is_dir():
            where = "is a file" if existing == path else f"is inside {existing}, which is a file"
            raise ConfigError(f"{key}={value} {where}, not a folder; choose a folder with {key}=...")
        try:
            with tempfile.TemporaryFile(dir=existing):
                pass
        except OSError as exc:
            raise ConfigError(f"{key}={value} cannot be written ({exc.strerror or type(exc).__name__} when "
                              f"writing a test file in {existing}); choose a writable folder with {key}=...") from None
