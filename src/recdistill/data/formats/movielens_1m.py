"""``dataset.format=ml-1m``: MovieLens-1M from a local copy (``config/conf/dataset/ml-1m.yaml``):
``ratings.dat`` and ``movies.dat`` (``::``-separated, latin-1), in a folder or ``ml-1m.zip``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from recdistill.data import readers
from recdistill.data.files import Container
from recdistill.data.formats.registry import DatasetFormat, Source, register, required_path
from recdistill.data.settings import DatasetSettings


@dataclass(frozen=True)
class MovieLens1MOptions:
    encoding: str


def locate(settings: DatasetSettings, cache: Path | None) -> Source:
    container = Container(required_path(settings, "the folder (or ml-1m.zip) with ratings.dat and movies.dat"))
    return Source(container, f"local MovieLens-1M copy {container.path}", ("ratings.dat", "movies.dat"),
                  lambda: readers.read_ml1m(container, settings.options.encoding))


FORMAT = register(DatasetFormat("ml-1m", MovieLens1MOptions, locate))
