"""Open what a user points at: a training checkpoint (scored by torch, catalogue from the prepared
dataset it was trained on) or an exported ONNX model (scored by ONNX Runtime, catalogue from the files
``export-model`` wrote beside it)."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from recdistill.engine.integrity import recorded_checksum
from recdistill.engine.rundir import sha256_file
from recdistill.errors import RecdistillError
from recdistill.serve.catalogue import Catalogue


@dataclass
class ServedModel:
    scorer: object          # TorchScorer | OnnxScorer: padded int64 [B, L] -> float32 [B, N + 1]
    catalogue: Catalogue
    max_len: int
    kind: str               # "student" | "distill"
    source: str             # the path given
    info: dict = field(default_factory=dict)  # file, sha256, dataset_fingerprint, epoch, created, file_stat

    def describe(self) -> dict:
        return {"model": self.source, "kind": self.kind, "backend": self.scorer.name, "items": self.catalogue.num_items,
                "users": len(self.catalogue.histories), "max_len": self.max_len}

    def metadata(self) -> dict:
        return {**self.describe(), **{k: v for k, v in self.info.items() if k != "file_stat"}}

    def file_problem(self) -> str | None:
        """Why the file this model was loaded from no longer is that model (deleted, or replaced), or None."""
        file = self.info.get("file")
        if not file:
            return None
        try:
            stat = os.stat(file)
        except OSError:
            return f"the model file {file} is gone (deleted or moved) since it was loaded"
        if [stat.st_size, stat.st_mtime_ns] != self.info.get("file_stat"):
            return f"the model file {file} was replaced since it was loaded; POST /reload to serve the new one"
        return None


def _file_info(path: Path, digest: str, **extra) -> dict:
    stat = os.stat(path)
    return {"file": str(path), "sha256": digest, "file_stat": [stat.st_size, stat.st_mtime_ns],
            "created": extra.pop("created", None) or time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(stat.st_mtime)),
            **extra}


def check_finite(served: ServedModel) -> ServedModel:
    """Score a probe history and refuse a model whose scores are not all finite (NaN or infinite weights)."""
    from recdistill.serve.scorers import pad_histories

    probe = [np.arange(1, min(served.catalogue.num_items, 5) + 1)]
    scores = served.scorer(pad_histories(probe, served.max_len)[0])
    if not np.isfinite(scores[:, 1:]).all():
        bad = int((~np.isfinite(scores[:, 1:])).sum())
        raise RecdistillError(f"{served.source} gives non-finite scores ({bad} of {scores.shape[1] - 1} items NaN or "
                              "infinite on a probe history): its weights are damaged; retrain or restore it")
    return served


def prepared_folder_for(rec, data_dir: str | Path | None) -> Path:
    """``data_dir`` if given, else the prepared dataset folder the checkpoint was trained on."""
    if data_dir:
        return Path(data_dir).expanduser()
    recorded = (rec.cfg.get("prepared") if isinstance(rec.cfg, dict) else None) or rec.dataset_path
    if not recorded or not Path(recorded).expanduser().is_dir():
        raise RecdistillError(f"cannot find the prepared dataset {rec.path} was trained on ({recorded}); "
                              "pass its folder with --data (e.g. --data data/ml-100k)")
    return Path(recorded).expanduser()


def open_recommender(path: str | Path, data_dir: str | Path | None = None):
    """The checkpoint's :class:`~recdistill.student.checkpoint.Recommender` and the catalogue of the
    prepared dataset it was trained on (``data_dir``, or the folder it recorded), checked to belong together."""
    from recdistill.data.prepared import load_prepared
    from recdistill.student.checkpoint import load_recommender

    rec = load_recommender(path)
    data = load_prepared(prepared_folder_for(rec, data_dir))
    rec.check_dataset(data)
    return rec, Catalogue.from_prepared(data)


def open_checkpoint(path: str | Path, data_dir: str | Path | None = None) -> ServedModel:
    from recdistill.serve.scorers import TorchScorer

    rec, catalogue = open_recommender(path, data_dir)
    file = Path(path).expanduser()
    # loading verified the file against its record, if it has one: hash it again only when it has none
    info = _file_info(file, recorded_checksum(file) or sha256_file(file), dataset_fingerprint=rec.dataset_fingerprint,
                      epoch=rec.epoch)
    return check_finite(ServedModel(TorchScorer(rec.model), catalogue, rec.model.max_len, rec.kind, str(path), info))


def open_onnx(path: str | Path, threads: int | None = None) -> ServedModel:
    from recdistill.serve.scorers import OnnxScorer

    path = Path(path).expanduser()
    if path.is_dir():
        path = path / "model.onnx"
    scorer = OnnxScorer(path, threads)
    catalogue = Catalogue.read(path.parent, scorer.meta.get("dataset_fingerprint"))
    if catalogue.num_items != scorer.num_items:
        raise RecdistillError(f"{path.parent}: the item table has {catalogue.num_items} items, the model "
                              f"{scorer.num_items}; the files do not belong together")
    info = _file_info(path, scorer.sha256, dataset_fingerprint=scorer.meta.get("dataset_fingerprint"),
                      created=scorer.meta.get("created"), epoch=scorer.meta.get("epoch"))
    return check_finite(ServedModel(scorer, catalogue, scorer.max_len, scorer.meta.get("kind", "?"), str(path), info))


def open_model(path: str | Path, data_dir: str | Path | None = None, threads: int | None = None) -> ServedModel:
    """A ``.onnx`` file or an ``export-model`` folder -> ONNX Runtime; anything else -> a checkpoint."""
    p = Path(path).expanduser()
    if p.suffix == ".pt" or (p.is_dir() and (p / "model.pt").is_file() and not (p / "model.onnx").is_file()):
        from recdistill.serve.onnx_export import TORCHSCRIPT_GONE

        raise RecdistillError(f"{p} is a TorchScript export, which recommend and serve do not read "
                              f"({TORCHSCRIPT_GONE.split(': ', 1)[1]}); export the checkpoint again with "
                              "`recdistill export-model CKPT` (ONNX)")
    if p.is_dir() and not (p / "model.onnx").is_file() and (p / "model.json").is_file():
        raise RecdistillError(f"{p} has a model.json but no model.onnx; export the model again with "
                              "`recdistill export-model`")
    if p.suffix == ".onnx" or (p.is_dir() and (p / "model.onnx").is_file()):
        if data_dir:
            raise RecdistillError("--data is for checkpoints; an exported model carries its item table")
        return open_onnx(p, threads)
    return open_checkpoint(p, data_dir)
