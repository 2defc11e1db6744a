"""The app as uvicorn's workers build it. uvicorn's multi-worker mode starts fresh processes that import
the app by name, so ``serve`` writes its settings to a small JSON file (in a private temporary folder)
and names it in ``RECDISTILL_SERVE_SETTINGS``; :func:`create_app` reads it in each worker. API keys are
never in that file: a worker reads them again from ``--api-key-file`` or ``RECDISTILL_API_KEYS`` (which
it inherits), as the parent did.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path

SETTINGS_ENV = "RECDISTILL_SERVE_SETTINGS"


@dataclass
class ServeSettings:
    model: str
    data: str | None = None
    threads: int = 1                 # per worker, torch and ONNX Runtime alike
    max_k: int = 100
    max_batch: int = 256
    max_body_bytes: int = 2 * 1024 * 1024
    max_batch_items: int = 100_000
    docs: bool = False
    api_key_file: str | None = None
    access_log: str | None = None    # None | "json"


def default_threads(workers: int) -> int:
    """The cores this process may use, shared out among the workers (at least one each): more threads than
    cores make each worker's OpenMP threads wait on the others'."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        cores = os.cpu_count() or 1
    return max(1, cores // max(1, workers))


def write_settings(settings: ServeSettings, folder: Path) -> Path:
    path = Path(folder) / "serve-settings.json"
    path.write_text(json.dumps(asdict(settings)))
    return path


def read_settings() -> ServeSettings:
    path = os.environ.get(SETTINGS_ENV)
    if not path:
        raise RuntimeError(f"{SETTINGS_ENV} is not set: this factory is for the workers `recdistill serve` starts")
    return ServeSettings(**json.loads(Path(path).read_text()))


def app_from_settings(settings: ServeSettings, served=None):
    """The FastAPI app; ``served``: a model already open in this process (else it is opened here)."""
    import torch

    from recdistill.serve.auth import read_api_keys
    from recdistill.serve.http_app import build_app
    from recdistill.serve.observe import json_access_logger
    from recdistill.serve.source import open_model

    torch.set_num_threads(settings.threads)

    def reopen():
        return open_model(settings.model, settings.data, settings.threads)

    return build_app(served or reopen(), max_k=settings.max_k, max_batch=settings.max_batch, reopen=reopen,
                     api_keys=read_api_keys(settings.api_key_file), max_body_bytes=settings.max_body_bytes,
                     max_batch_items=settings.max_batch_items, docs=settings.docs,
                     access_log=json_access_logger() if settings.access_log == "json" else None)


def create_app():
    """uvicorn's app factory (``recdistill.serve.app_factory:create_app``), one call per worker."""
    return app_from_settings(read_settings())
