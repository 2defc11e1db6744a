"""``dataset.format=recbole``: RecBole atomic files (``config/conf/dataset/recbole.yaml``):
``<stem>.inter`` and, when present, ``<stem>.item``, tab-separated with a typed header."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from recdistill.data import readers
from recdistill.data.files import Container
from recdistill.data.formats.registry import DatasetFormat, Source, register, required_path
from recdistill.data.settings import DatasetSettings


@dataclass(frozen=True)
class RecboleOptions:
    stem: str | None          # file stem; None: the folder's (or zip's) name
    encoding: str
    title_field: str | None   # the .item column with titles; None: the first of movie_title, title, name


def locate(settings: DatasetSettings, cache: Path | None) -> Source:
    options = settings.options
    container = Container(required_path(settings, "the folder with <stem>.inter and <stem>.item"))
    stem = options.stem or (container.path.stem if container.path.is_file() else container.path.name)
    return Source(container, f"local RecBole atomic files {container.path}/{stem}.inter",
                  (f"{stem}.inter", f"{stem}.item"),
                  lambda: readers.read_recbole(container, stem, options.encoding, options.title_field))


FORMAT = register(DatasetFormat("recbole", RecboleOptions, locate))
