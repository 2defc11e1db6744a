"""API keys for ``serve``: where they come from, and their minimum length."""

from __future__ import annotations

from pathlib import Path

from recdistill.errors import RecdistillError

API_KEY_ENV = "RECDISTILL_API_KEYS"


def read_api_keys(path: str | None) -> list[str]:
    """Keys from ``--api-key-file`` (one per line) or the RECDISTILL_API_KEYS environment variable (comma-
    separated); never from the command line, where every user of the machine can read them."""
    import os

    if path:
        file = Path(path).expanduser()
        if not file.is_file():
            raise RecdistillError(f"--api-key-file {file} does not exist")
        keys = [line.strip() for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
        if not keys:
            raise RecdistillError(f"--api-key-file {file} holds no key (one per line)")
    else:
        keys = [k.strip() for k in os.environ.get(API_KEY_ENV, "").split(",") if k.strip()]
    short = [k for k in keys if len(k) < 16]
    if short:
        raise RecdistillError(f"{len(short)} API key(s) shorter than 16 characters; use long random keys "
                              "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)")
    return keys
