"""``export-model``: a trained recommender as a self-contained ONNX model plus its item table.

The folder holds ``model.onnx`` (input ``history``: int64 ``[batch, max_len]``, left-padded with 0;
output ``scores``: float32 ``[batch, num_items + 1]``, column 0 is ``-inf``), ``items.parquet`` (item,
original_id, title), ``users.parquet`` (user, history) and ``model.json`` (what the model is and how to
feed it). ONNX Runtime alone can run it; nothing of recdistill is needed.
"""

from __future__ import annotations

import json
import time
import warnings
from pathlib import Path

import torch

from recdistill.engine.rundir import atomic_folder, sha256_file
from recdistill.errors import RecdistillError
from recdistill.serve.catalogue import Catalogue
from recdistill.serve.scorers import CatalogueScores

FORMATS = ("onnx",)
OPSET = 17
# TorchScript was offered once; recommend and serve never read it. It is gone rather than half-supported:
# PyTorch has deprecated TorchScript (torch.jit) in favour of torch.export, and ONNX already covers "run it
# without recdistill" (ONNX Runtime, faster at batch 1), while a torch user can serve the checkpoint itself.
TORCHSCRIPT_GONE = ("--format torchscript is no longer offered: PyTorch has deprecated TorchScript, and recommend / "
                    "serve read ONNX exports and checkpoints; use --format onnx (the default), or serve the checkpoint")


def export_model(model, catalogue: Catalogue, out_dir: str | Path, meta: dict, fmt: str = "onnx") -> Path:
    """Write ``out_dir`` (atomically: a failed export leaves any earlier folder as it was)."""
    if fmt == "torchscript":
        raise RecdistillError(TORCHSCRIPT_GONE)
    if fmt not in FORMATS:
        raise RecdistillError(f"--format {fmt!r} is not valid; choose one of: {', '.join(FORMATS)}")
    module = CatalogueScores(model).eval()
    max_len = module.encoder.max_len
    example = torch.zeros(2, max_len, dtype=torch.long)
    example[:, -1] = 1
    out_dir = Path(out_dir).expanduser()
    if out_dir.exists() and not (out_dir / "model.json").is_file():
        # atomic_folder replaces the folder: only ever an earlier export, never a folder of other files
        raise RecdistillError(f"{out_dir} exists and is not an earlier `export-model` folder; choose a new --out")
    with atomic_folder(out_dir) as tmp:
        tmp = Path(tmp)
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)  # the length is fixed on purpose
            # The TorchScript-based exporter: the dynamo one needs onnxscript and gains nothing here.
            torch.onnx.export(module, (example,), str(tmp / "model.onnx"), input_names=["history"],
                              output_names=["scores"], dynamic_axes={"history": {0: "batch"}, "scores": {0: "batch"}},
                              opset_version=OPSET, dynamo=False)
        file = "model.onnx"
        catalogue.write(tmp)
        info = {**meta, "format": fmt, "file": file, "sha256": sha256_file(tmp / file), "created": time.strftime(
                    "%Y-%m-%dT%H:%M:%S%z"), "max_len": max_len, "num_items": catalogue.num_items,
                "input": {"name": "history", "dtype": "int64", "shape": ["batch", max_len],
                          "padding": "left, with 0; the newest item last"},
                "output": {"name": "scores", "dtype": "float32", "shape": ["batch", catalogue.num_items + 1],
                           "note": "column i is item i's score; column 0 (padding) is -inf"}}
        (tmp / "model.json").write_text(json.dumps(info, indent=2) + "\n")
    return out_dir / file
