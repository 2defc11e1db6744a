"""``dataset.format=csv``: one CSV of interactions with a header row (``config/conf/dataset/csv.yaml``), titles
from a column of it or from a separate ``dataset.items_path`` CSV."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from recdistill.data import readers
from recdistill.data.files import Container
from recdistill.data.formats.registry import DatasetFormat, Frames, Source, register, required_path
from recdistill.data.settings import DatasetSettings
from recdistill.errors import DataError


@dataclass(frozen=True)
class CsvOptions:
    separator: str
    encoding: str
    user_col: str
    item_col: str
    timestamp_col: str
    title_col: str | None
    rating_col: str | None
    genres_col: str | None
    genres_separator: str
    items_path: str | None


def csv_file(value, key: str) -> Path:
    """``dataset.<key>`` as an existing file; a folder or a missing path is named as what it is."""
    file = Path(str(value)).expanduser()
    if file.is_dir():
        csvs = sorted(p.name for p in file.glob("*.csv"))[:3]
        hint = f" (it holds {', '.join(csvs)})" if csvs else ""
        raise DataError(f"{file} (dataset.{key}) is a folder{hint}; dataset.{key} must be the CSV file itself")
    if not file.is_file():
        raise DataError(f"{file} (dataset.{key}) does not exist")
    return file


def read(file: Path, options: CsvOptions) -> Frames:
    common = {"separator": options.separator, "encoding": options.encoding}
    genres = {"genres_col": options.genres_col, "genres_separator": options.genres_separator}
    interactions, items = readers.read_csv(
        Container(file.parent).read(file.name), user_col=options.user_col, item_col=options.item_col,
        timestamp_col=options.timestamp_col, rating_col=options.rating_col,
        title_col=None if options.items_path else options.title_col, **common, **genres)
    if options.items_path:
        items_file = csv_file(options.items_path, "items_path")
        # an items file always has titles: title_col=null there means the column called "title"
        items = readers.read_items_csv(Container(items_file.parent).read(items_file.name), item_col=options.item_col,
                                       title_col=options.title_col or "title", **common, **genres)
    return interactions, items


def locate(settings: DatasetSettings, cache: Path | None) -> Source:
    file = csv_file(required_path(settings, "the interactions CSV file"), "path")
    return Source(Container(file.parent), f"local CSV {file}", (file.name,), lambda: read(file, settings.options))


def input_signature(settings: DatasetSettings) -> str:
    """The SHA-256 of the interactions file and the items file (which may sit in another folder)."""
    sha = hashlib.sha256()
    for key, value in (("path", settings.path), ("items_path", settings.options.items_path)):
        if value:
            sha.update(csv_file(value, key).read_bytes())
    return sha.hexdigest()


FORMAT = register(DatasetFormat("csv", CsvOptions, locate, input_signature))
