"""Resuming a training run from its last checkpoint.

Lightning's checkpoint of the latest epoch or validation (:func:`last_checkpoint_callback`) holds the weights, optimizer,
scheduler, loop counters, callback states and the data module's state; ``trainer.fit(ckpt_path=...)``
restores them. Two things it does not keep are added here: the random-number generators (Python,
NumPy, torch CPU and CUDA), so the next epoch shuffles, samples negatives and drops out exactly as the
uninterrupted run would, and the run folder to continue in (:func:`resumable_run`).
"""

from __future__ import annotations

import random
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import ModelCheckpoint
import numpy as np
import torch

from recdistill.engine.checkpoint_files import read_checkpoint_file
from recdistill.errors import RecdistillError

LAST_CHECKPOINT = "last.ckpt"


class RandomStates(L.Callback):
    """Saves the generators' states in every checkpoint and puts them back when training resumes.

    Kept as tensors and plain numbers so the checkpoint still loads with ``weights_only=True``."""

    def state_dict(self) -> dict:
        kind, keys, pos, has_gauss, gauss = np.random.get_state()
        state = {"python": random.getstate(), "torch": torch.get_rng_state(),
                 "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                           "has_gauss": int(has_gauss), "gauss": float(gauss)}}
        if torch.cuda.is_available():
            state["cuda"] = torch.cuda.get_rng_state_all()
        return state

    def load_state_dict(self, state: dict) -> None:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
        torch.set_rng_state(state["torch"])
        n = state["numpy"]
        np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["gauss"]))
        if "cuda" in state and torch.cuda.is_available():
            torch.cuda.set_rng_state_all(state["cuda"])


def last_checkpoint_callback(folder: str | Path) -> ModelCheckpoint:
    """Writes ``<folder>/last.ckpt`` at every checkpoint point (epoch end, or each validation of a
    step-based run), replacing the previous one. Not ``save_last=True`` on the best-model callback: in
    Lightning 2.6 that refreshes ``last.ckpt`` only when the monitored metric improves."""
    return ModelCheckpoint(dirpath=str(folder), filename=LAST_CHECKPOINT.removesuffix(".ckpt"), monitor=None,
                           save_top_k=1, enable_version_counter=False)


def last_checkpoint(run_dir: str | Path) -> Path:
    """``<run>/checkpoints/last.ckpt``, checked to be a readable checkpoint before Lightning loads it."""
    path = Path(run_dir) / "checkpoints" / LAST_CHECKPOINT
    if not path.is_file():
        raise RecdistillError(f"{run_dir} has no checkpoints/{LAST_CHECKPOINT} to resume from (the run stopped "
                              "before its first checkpoint); start it again without train.resume")
    read_checkpoint_file(path, "checkpoint")
    return path


def resumable_run(folder: str | Path) -> Path:
    """The run folder named by ``train.resume``, checked to be one."""
    path = Path(folder).expanduser()
    if not path.is_dir() or not (path / "config.yaml").is_file():
        raise RecdistillError(f"train.resume={folder} is not a run folder (it needs the config.yaml every run "
                              "writes); pass a folder under paths.runs_dir")
    return path
