"""The one reader of checkpoint and adapter files (``.ckpt`` written by Lightning, ``.safetensors``).

``torch.load`` runs with ``weights_only=True``: a checkpoint is data, never code. A file that cannot be
read that way (truncated by a kill or a full disk, or not a checkpoint at all) is reported as "not a
recdistill checkpoint, or truncated". torch's own message is left out on purpose: it suggests
``weights_only=False``, i.e. running whatever pickle the file holds, which is never the fix here.
"""

from __future__ import annotations

from pathlib import Path

import torch

from recdistill.engine.integrity import verify_recorded
from recdistill.errors import RecdistillError


def unreadable(path: Path, what: str) -> RecdistillError:
    return RecdistillError(f"{path} is not a recdistill {what}, or truncated; it cannot be read as one "
                           f"(rerun the command that wrote it)")


def read_checkpoint_file(path: str | Path, what: str = "checkpoint") -> dict:
    """The checkpoint at ``path`` as a dict of plain data and tensors, on the CPU."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise RecdistillError(f"no {what} at {path}")
    verify_recorded(path, what)  # a damaged or replaced file is an error here, before torch reads it
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # RuntimeError, UnpicklingError, OSError (EINVAL on a truncated zip), EOFError
        raise unreadable(path, what) from exc
    if not isinstance(ckpt, dict):
        raise unreadable(path, what)
    return ckpt


def read_safetensors_file(path: str | Path, what: str = "adapter") -> dict[str, torch.Tensor]:
    """All tensors of a ``.safetensors`` file, on the CPU."""
    from safetensors.torch import load_file

    path = Path(path).expanduser()
    if not path.is_file():
        raise RecdistillError(f"no {what} file at {path}")
    try:
        return load_file(str(path))
    except Exception as exc:  # SafetensorError on a truncated or foreign file
        raise unreadable(path, what) from exc
