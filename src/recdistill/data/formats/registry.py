"""The registry of dataset formats: ``dataset.format`` names one of them.

A format is one module in this package that calls :func:`register` with a :class:`DatasetFormat`, plus its
YAML, ``config/conf/dataset/<name>.yaml``, which holds the common keys (those of
:class:`~recdistill.data.settings.DatasetSettings`) and the format's own ones (the fields of its ``options``
dataclass). The modules are found by listing the package, so nothing else names them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import pandas as pd

from recdistill.data.files import Container
from recdistill.data.settings import DatasetSettings
from recdistill.engine.registry import Registry
from recdistill.errors import ConfigError, DataError

Frames = tuple[pd.DataFrame, "pd.DataFrame | None"]   # (interactions, items or None); see data/readers.py


@dataclass(frozen=True)
class Source:
    """The located input: where it is, which files are read (hashed into the fingerprint) and how."""

    container: Container | None
    description: str                 # printed and stored in stats.json ("source")
    files: tuple[str, ...]           # names in ``container`` that ``read`` reads
    read: Callable[[], Frames]       # the format's reader, bound to these files and the settings


@dataclass(frozen=True)
class DatasetFormat:
    name: str        # the value of dataset.format, and the stem of its YAML file
    options: type    # a dataclass of the format's own YAML keys (no defaults: the YAML has them)
    locate: Callable[[DatasetSettings, Path | None], Source]   # find (or fetch into the cache) the files
    # What identifies the input without fetching anything; None: the SHA-256 of the located files.
    input_signature: Callable[[DatasetSettings], str] | None = None

    def signature(self, settings: DatasetSettings) -> str:
        if self.input_signature is not None:
            return self.input_signature(settings)
        source = self.locate(settings, None)
        return source.container.digest(list(source.files))


_FORMATS: Registry[DatasetFormat] = Registry("dataset format", __name__.rsplit(".", 1)[0])


def register(fmt: DatasetFormat) -> DatasetFormat:
    return _FORMATS.register(fmt.name, fmt)


def unregister(name: str) -> None:
    """Remove a format (a test's made-up one)."""
    _FORMATS.unregister(name)


def known_formats() -> tuple[str, ...]:
    return tuple(sorted(_FORMATS.entries()))


def get_format(name) -> DatasetFormat:
    """The format called ``name``; a ConfigError naming the known ones otherwise."""
    formats = _FORMATS.entries()
    if name not in formats:
        raise ConfigError(f"dataset.format={name!r} is not valid; choose one of: {', '.join(known_formats())}")
    return formats[name]


def required_path(settings: DatasetSettings, what: str) -> str:
    """``dataset.path``, which this format cannot do without (``what`` says what it must point at)."""
    if not settings.path:
        raise DataError(f"dataset={settings.format} needs dataset.path: {what}")
    return str(settings.path)
