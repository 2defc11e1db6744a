"""The pipeline's manifest: one JSON file per pipeline folder recording each stage's key (a hash of
its resolved config and of its inputs' keys), status, outputs, time and peak memory.

It is rewritten atomically (temp file, then rename) before and after every stage, so an interrupted
pipeline leaves a manifest that says exactly which stages finished; the next run resumes from there.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from recdistill.engine.rundir import atomic_write_json
from recdistill.errors import RecdistillError

FILE = "manifest.json"
FORMAT_VERSION = 1
# Output entries that are paths (the rest are facts such as the data fingerprint).
PATH_KEYS = {"data", "run", "checkpoint", "adapter", "teacher_outputs", "markdown", "html"}


class Manifest:
    def __init__(self, folder: Path, data: dict):
        self.folder = folder
        self.data = data

    @classmethod
    def load(cls, folder: str | Path, profile: str) -> "Manifest":
        folder = Path(folder)
        path = folder / FILE
        if path.is_file():
            try:
                data = json.loads(path.read_text(encoding="utf-8"))
            except json.JSONDecodeError as exc:
                raise RecdistillError(f"{path} is not valid JSON ({exc}); move it away to start the pipeline afresh") from exc
            if data.get("format_version") != FORMAT_VERSION:
                raise RecdistillError(f"{path} has format_version {data.get('format_version')!r}, expected "
                                      f"{FORMAT_VERSION}; use another pipeline.dir or move the folder away")
        else:
            data = {"format_version": FORMAT_VERSION, "created": _now(), "stages": {}}
        data["profile"] = profile
        return cls(folder, data)

    def entry(self, stage: str) -> dict:
        return self.data["stages"].get(stage) or {}

    def update(self, stage: str, **fields) -> None:
        entry = self.data["stages"].setdefault(stage, {})
        entry.update(fields)
        self.save()

    def replace(self, stage: str, entry: dict) -> None:
        self.data["stages"][stage] = entry
        self.save()

    def save(self) -> Path:
        self.data["updated"] = _now()
        return atomic_write_json(self.folder / FILE, self.data)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S")


def relative_outputs(outputs: dict, folder: Path) -> dict:
    """Paths inside the pipeline folder are recorded relative to it, so the folder can be moved."""
    out, root = dict(outputs), folder.resolve()
    for k in PATH_KEYS & out.keys():
        path = Path(out[k]).resolve()
        out[k] = str(path.relative_to(root)) if path.is_relative_to(root) else str(path)
    return out


def absolute_outputs(outputs: dict | None, folder: Path) -> dict:
    out = dict(outputs or {})
    for k in PATH_KEYS & out.keys():
        out[k] = str((folder / out[k]).resolve())  # an absolute path stays as it is
    return out
