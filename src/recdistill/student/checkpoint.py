"""Load a trained student from a Lightning checkpoint written by ``recdistill train student``.

The checkpoint holds the LightningModule's state (``model.*`` keys are the SASRec's) and, as plain
hyper-parameters, the run's resolved config, the catalogue size and the dataset's name and fingerprint.
"""

from __future__ import annotations

from pathlib import Path

from recdistill.engine.checkpoint_files import read_checkpoint_file
from recdistill.errors import ConfigError, RecdistillError
from recdistill.student.sasrec import SASRec


def read_checkpoint(path: str | Path) -> dict:
    path = Path(path)
    if not path.is_file():
        raise RecdistillError(f"no student checkpoint at {path}; pass a .ckpt file from a run's checkpoints/ folder")
    ckpt = read_checkpoint_file(path, "student checkpoint")
    hp = ckpt.get("hyper_parameters", {})
    if "cfg" not in hp or "num_items" not in hp or "state_dict" not in ckpt:
        raise RecdistillError(f"{path} is not a student checkpoint written by `recdistill train student`")
    return ckpt


def load_student(path: str | Path) -> tuple[SASRec, dict]:
    """The trained SASRec (on the CPU, in eval mode) and its metadata.

    ``meta``: ``num_items``, ``dataset`` (name), ``dataset_fingerprint``, ``model_config`` (the
    constructor's arguments), ``epoch``, ``global_step``, ``cfg`` (the run's resolved config, a dict).
    """
    ckpt = read_checkpoint(path)
    hp = ckpt["hyper_parameters"]
    state = {k[len("model."):]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")}
    s = hp["cfg"]["student"]
    model = SASRec(num_items=int(hp["num_items"]), max_len=int(s["max_len"]), hidden_size=int(s["hidden_size"]),
                   num_blocks=int(s["num_blocks"]), num_heads=int(s["num_heads"]), dropout=float(s["dropout"]),
                   norm_first=bool(s["norm_first"]))
    model.load_state_dict(state)
    model.eval()
    dataset_meta = hp.get("dataset_meta", {})
    meta = {
        "num_items": int(hp["num_items"]),
        "dataset": dataset_meta.get("name"),
        "dataset_fingerprint": dataset_meta.get("fingerprint"),
        "model_config": dict(model.config),
        "epoch": ckpt.get("epoch"),
        "global_step": ckpt.get("global_step"),
        "cfg": hp["cfg"],
        "path": str(Path(path)),
    }
    return model, meta


def load_student_for(path: str | Path | None, data, what: str = "student checkpoint") -> tuple[SASRec, dict]:
    """``load_student(path)`` plus the check that it was trained on the prepared dataset ``data``."""
    if not path:
        raise ConfigError(f"no {what} given")
    model, meta = load_student(Path(path).expanduser())
    data.check_matches(f"the {what} {meta['path']}", meta.get("dataset_fingerprint"), meta["num_items"])
    return model, meta
