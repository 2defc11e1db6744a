"""Load a trained student from a Lightning checkpoint written by ``recdistill train student``.

The checkpoint holds the LightningModule's state (``model.*`` keys are the SASRec's) and, as plain
hyper-parameters, the run's resolved config, the catalogue size and the dataset's name and fingerprint.
"""

from __future__ import annotations

from pathlib import Path

import torch

from recdistill.errors import RecdistillError
from recdistill.student.sasrec import SASRec


def read_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise RecdistillError(f"no student checkpoint at {path}; pass a .ckpt file from a run's checkpoints/ folder")
    try:
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise RecdistillError(f"cannot read {path} as a student checkpoint: {exc}") from exc
    hp = ckpt.get("hyper_parameters", {}) if isinstance(ckpt, dict) else {}
    if "cfg" not in hp or "num_items" not in hp or "state_dict" not in ckpt:
        raise RecdistillError(f"{path} is not a student checkpoint written by `recdistill train student`")
    return ckpt


def load_student(path: str | Path) -> tuple[SASRec, dict]:
    """The trained SASRec (student or distilled student; on the CPU, in eval mode) and its metadata.

    ``meta``: ``num_items``, ``dataset`` (name), ``dataset_fingerprint``, ``model_config`` (the
    constructor's arguments), ``epoch``, ``global_step``, ``cfg`` (the run's resolved config, a dict),
    ``path``, ``kind``. See :func:`recdistill.student.recommender.load_recommender`.
    """
    from recdistill.student.recommender import load_recommender

    rec = load_recommender(path)
    return rec.model, rec.meta()
