"""Open what a user points at: a training checkpoint (scored by torch, catalogue from the prepared
dataset it was trained on) or an exported ONNX model (scored by ONNX Runtime, catalogue from the files
``export-model`` wrote beside it)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from recdistill.errors import RecdistillError
from recdistill.serve.catalogue import Catalogue


@dataclass
class ServedModel:
    scorer: object          # TorchScorer | OnnxScorer: padded int64 [B, L] -> float32 [B, N + 1]
    catalogue: Catalogue
    max_len: int
    kind: str               # "student" | "distill"
    source: str             # the path given

    def describe(self) -> dict:
        return {"model": self.source, "kind": self.kind, "backend": self.scorer.name, "items": self.catalogue.num_items,
                "users": len(self.catalogue.histories), "max_len": self.max_len}


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
    return ServedModel(TorchScorer(rec.model), catalogue, rec.model.max_len, rec.kind, str(path))


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
    return ServedModel(scorer, catalogue, scorer.max_len, scorer.meta.get("kind", "?"), str(path))


def open_model(path: str | Path, data_dir: str | Path | None = None, threads: int | None = None) -> ServedModel:
    """A ``.onnx`` file or an ``export-model`` folder -> ONNX Runtime; anything else -> a checkpoint."""
    p = Path(path).expanduser()
    if p.suffix == ".onnx" or (p.is_dir() and (p / "model.onnx").is_file()):
        if data_dir:
            raise RecdistillError("--data is for checkpoints; an exported model carries its item table")
        return open_onnx(p, threads)
    return open_checkpoint(p, data_dir)
