"""Scores over the whole catalogue for a batch of padded histories, from torch or from ONNX Runtime.

Both scorers take ``int64 [B, max_len]`` left-padded item ids and return ``float32 [B, N + 1]`` (column 0,
padding, is ``-inf``), so recommendation, the HTTP service and the benchmark do not care which one runs.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from recdistill.engine.integrity import verify
from recdistill.errors import RecdistillError
from recdistill.student.distilled import is_distilled
from recdistill.student.item_table import ItemTableRecommender


def frozen_student(model: ItemTableRecommender) -> ItemTableRecommender:
    """A plain student that scores exactly like ``model`` in eval mode. A distilled student's item table is
    ``e_id + gamma * MLP(e_llm)`` on every read (input and output alike); for serving it is computed once
    and stored as the plain model's embedding table, so nothing is projected per request."""
    if is_distilled(model) and model.tie == "untied":
        # its inputs and its scores read two different tables; the plain model has one
        raise RecdistillError("an untied distilled student (distill.ed.tie=untied) cannot be frozen for serving "
                              "or export yet; train it with distill.ed.tie=tied (the default)")
    plain = (type(model).plain if is_distilled(model) else type(model))(**model.config)
    state = {k: v for k, v in model.state_dict().items() if not k.startswith("llm_")}
    with torch.no_grad():
        state["item_embedding.weight"] = model.all_item_embeddings().detach().clone()
    plain.load_state_dict(state)
    return plain.eval()


class CatalogueScores(nn.Module):
    """``seq[B, L]`` -> scores of every item id ``[B, N + 1]``; the module ``export-model`` writes to ONNX."""

    def __init__(self, model: ItemTableRecommender):
        super().__init__()
        self.encoder = frozen_student(model)

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder.user_representation(seq)
        scores = hidden @ self.encoder.item_embedding.weight.t()
        # -inf for padding without an in-place write, so the exported graph is a plain function
        padding = torch.zeros_like(scores[:1])
        padding[:, 0] = float("-inf")
        return scores + padding


def pad_histories(histories, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Left-padded ``int64 [B, max_len]`` holding each history's last ``max_len`` items, and how many
    older items each row dropped (a student reads at most ``max_len``)."""
    out = np.zeros((len(histories), max_len), dtype=np.int64)
    cut = np.zeros(len(histories), dtype=np.int64)
    for row, history in enumerate(histories):
        history = np.asarray(history, dtype=np.int64)[-max_len:] if len(history) else np.zeros(0, np.int64)
        cut[row] = max(0, len(histories[row]) - max_len)
        if len(history):
            out[row, max_len - len(history):] = history
    return out, cut


class TorchScorer:
    def __init__(self, model: ItemTableRecommender):
        self.module = CatalogueScores(model).eval()
        self.max_len = self.module.encoder.max_len
        self.num_items = self.module.encoder.num_items
        self.name = "torch"

    @torch.inference_mode()
    def __call__(self, padded: np.ndarray) -> np.ndarray:
        return self.module(torch.from_numpy(padded)).numpy()


class OnnxScorer:
    """An exported ``model.onnx`` run by ONNX Runtime on the CPU; ``threads`` sets its intra-op threads."""

    def __init__(self, path: str | Path, threads: int | None = None):
        import onnxruntime as ort

        path = Path(path)
        meta_file = path.parent / "model.json"
        if not path.is_file() or not meta_file.is_file():
            raise RecdistillError(f"no exported model at {path} (with model.json beside it); "
                                  "write one with `recdistill export-model CKPT --format onnx`")
        try:
            self.meta = json.loads(meta_file.read_text())
        except ValueError as exc:
            raise RecdistillError(f"{meta_file} is not valid JSON ({exc}); export the model again with "
                                  "`recdistill export-model`") from None
        if not isinstance(self.meta, dict) or not all(isinstance(self.meta.get(k), int) and self.meta[k] > 0
                                                      for k in ("max_len", "num_items")):
            raise RecdistillError(f"{meta_file} is damaged (it must be an object with positive integers max_len and "
                                  "num_items); export the model again with `recdistill export-model`")
        # models exported before the record existed have none and load as before
        self.sha256 = verify(path, self.meta.get("sha256"), "exported model")
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = int(threads)
        try:
            self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise RecdistillError(f"ONNX Runtime cannot load {path}: {str(exc).splitlines()[0]}") from exc
        self.max_len = int(self.meta["max_len"])
        self.num_items = int(self.meta["num_items"])
        self.name = "onnxruntime"

    def __call__(self, padded: np.ndarray) -> np.ndarray:
        return self.session.run(["scores"], {"history": padded})[0]
