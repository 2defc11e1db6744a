"""Run directories and result records.

Every run gets ``<runs_dir>/<YYYYmmdd-HHMMSS>_<name>/`` holding ``state.json`` (what state the run is in:
``running``, ``complete``, ``failed`` or ``interrupted``), ``config.yaml`` (fully resolved),
``metrics.json``, ``stages.json``, ``environment.json``, ``logs/`` (CSV and TensorBoard) and
``checkpoints/``. One JSON line per run is appended to ``<runs_dir>/results.jsonl``.
Files are written to a temporary name and renamed, so a crash never leaves half a file.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path


RUN_DIR_ENV = "RECDISTILL_RUN_DIR"  # the run folder, inherited by DDP child processes
STATE_FILE = "state.json"
RUN_STATES = ("running", "complete", "failed", "interrupted")


def sha256_file(path: str | os.PathLike) -> str:
    """Hex SHA-256 of a file, read in 1 MiB blocks (used to verify downloaded wheels and to key caches)."""
    import hashlib

    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def umask_mode(base: int = 0o666) -> int:
    """``base`` under the process's umask: the mode a plain ``open()`` would have given (mkstemp and mkdtemp
    create 0600 / 0700, which would leave every output readable by its owner only)."""
    mask = os.umask(0)
    os.umask(mask)
    return base & ~mask


def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, umask_mode())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise
    return path


def atomic_write_text(path: str | os.PathLike, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj) -> Path:
    return atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


@contextmanager
def atomic_folder(path: str | os.PathLike, keep_existing: bool = False):
    """Yield a temporary folder beside ``path`` to fill; when the block ends without an error it becomes
    ``path`` in one rename, so a reader never sees a half-written folder. An existing ``path`` is replaced
    (moved aside first, deleted after the swap), or with ``keep_existing`` kept and the new one dropped
    (another process finished the same work first). On an error the temporary folder is removed and
    ``path`` is left as it was."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    os.chmod(tmp, umask_mode(0o777))
    try:
        yield tmp
        if not path.exists():
            os.replace(tmp, path)
        elif keep_existing:
            shutil.rmtree(tmp)
        else:
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old.", dir=path.parent))
            os.replace(path, old / path.name)
            os.replace(tmp, path)
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def append_jsonl(path: str | os.PathLike, record: dict) -> None:
    """Append one record as a line. A single ``write`` of a line under 4 KiB on a local file system is
    not interleaved with other appenders; longer lines are written whole too in practice."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(json.dumps(record, default=str) + "\n")


class RunDir:
    """One run's folder."""

    def __init__(self, path: str | os.PathLike, runs_dir: str | os.PathLike | None = None):
        self.path = Path(path)
        self.runs_dir = Path(runs_dir) if runs_dir is not None else self.path.parent
        self.path.mkdir(parents=True, exist_ok=True)

    @classmethod
    def create(cls, runs_dir: str | os.PathLike, name: str) -> "RunDir":
        """A new ``<runs_dir>/<time>_<name>/``. Lightning's DDP launcher re-runs the command in one child
        process per extra device (``LOCAL_RANK`` >= 1); those reuse the folder the main process made,
        which it hands down in ``RECDISTILL_RUN_DIR``."""
        inherited = os.environ.get(RUN_DIR_ENV)
        if inherited and os.environ.get("LOCAL_RANK", "0") != "0":
            return cls(inherited, runs_dir)
        runs_dir = Path(runs_dir)
        stamp = time.strftime("%Y%m%d-%H%M%S")
        path = runs_dir / f"{stamp}_{name}"
        suffix = 1
        while path.exists():
            suffix += 1
            path = runs_dir / f"{stamp}_{name}-{suffix}"
        os.environ[RUN_DIR_ENV] = str(path.resolve())
        return cls(path, runs_dir)

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def logs(self) -> Path:
        return self.path / "logs"

    def keep_logs_before_resume(self) -> Path | None:
        """Move ``logs/csv`` aside to ``logs/csv-part<N>`` before a resumed run's Trainer starts: Lightning's
        CSV logger deletes an existing ``metrics.csv`` (TensorBoard's event files simply accumulate)."""
        csv = self.logs / "csv"
        if not (csv / "metrics.csv").is_file():
            return None
        part = 1
        while (self.logs / f"csv-part{part}").exists():
            part += 1
        os.replace(csv, self.logs / f"csv-part{part}")
        return self.logs / f"csv-part{part}"

    def write_state(self, state: str, error: str | None = None) -> Path:
        """``state.json``: the run's state, when it was set, and which process set it (so a reader can tell
        a ``running`` run whose process was killed: :func:`recdistill.report.runs.run_state`)."""
        if state not in RUN_STATES:
            raise ValueError(f"unknown run state {state!r}")
        previous = self.read_json(STATE_FILE) if (self.path / STATE_FILE).is_file() else {}
        record = {"state": state, "since": time.strftime("%Y-%m-%dT%H:%M:%S"), "pid": os.getpid(),
                  "host": socket.gethostname(), "started": previous.get("started") or time.strftime("%Y-%m-%dT%H:%M:%S"),
                  "resumed": previous.get("resumed", 0) + (state == "running" and bool(previous))}
        if error:
            record["error"] = error
        return self.write_json(STATE_FILE, record)

    def mark_ended(self, exc: BaseException) -> None:
        """After an exception: ``interrupted`` for Ctrl-C (Lightning turns it into ``SystemExit``), else
        ``failed`` with the error's first line. A finished run keeps ``complete``."""
        if (self.path / STATE_FILE).is_file() and self.read_json(STATE_FILE).get("state") == "complete":
            return
        if isinstance(exc, (KeyboardInterrupt, SystemExit)):
            self.write_state("interrupted")
        else:
            self.write_state("failed", f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}")

    def write_config(self, text: str) -> Path:
        """``config.yaml``: the run's resolved config as YAML text (the recipe renders it)."""
        return atomic_write_text(self.path / "config.yaml", text)

    def write_json(self, name: str, obj) -> Path:
        return atomic_write_json(self.path / name, obj)

    def read_json(self, name: str):
        with open(self.path / name, encoding="utf-8") as fh:
            return json.load(fh)

    def finish(self, workload: str, metrics: dict, stages: list[dict], env: dict,
               extra: dict | None = None) -> dict:
        """Write metrics.json, stages.json, environment.json, append the run's record to results.jsonl and
        set the state to ``complete``."""
        self.write_json("metrics.json", metrics)
        self.write_json("stages.json", stages)
        self.write_json("environment.json", env)
        record = {
            "run": self.path.name,
            "path": str(self.path),
            "workload": workload,
            "time": time.strftime("%Y-%m-%dT%H:%M:%S"),
            "metrics": metrics,
            "stages": stages,
            "environment": env,
        }
        if extra:
            record.update(extra)
        append_jsonl(self.runs_dir / "results.jsonl", record)
        self.write_state("complete")
        return record
