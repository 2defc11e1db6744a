"""The file format of item-text embeddings (``recdistill embed-items``): ``<stem>.safetensors`` (tensor
``embeddings``, ``[num_items + 1, dim]``, row 0 zeros: the same key as a teacher export's
``item_embeddings.safetensors``, so either file reads here) and ``<stem>.json`` beside it (the LLM settings,
text format and pooling that made it, so new items can be embedded the same way later)."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from recdistill.engine.rundir import atomic_write_json
from recdistill.errors import DataError

EMBEDDINGS_KEY = "embeddings"


def write_item_embeddings(stem: Path, embeddings: torch.Tensor, meta: dict) -> Path:
    """``<stem>.safetensors`` and ``<stem>.json``, each written under a temporary name, then renamed."""
    stem.parent.mkdir(parents=True, exist_ok=True)
    path = _beside(stem, ".safetensors")
    tmp = path.with_name(f".{path.name}.tmp")
    save_file({EMBEDDINGS_KEY: embeddings.contiguous().float()}, str(tmp))
    tmp.replace(path)
    atomic_write_json(_beside(stem, ".json"), {**meta, "rows": int(embeddings.shape[0]),
                                                  "dim": int(embeddings.shape[1])})
    return path


def _beside(stem: Path, suffix: str) -> Path:
    """``stem`` + suffix (names like ``ml-100k-new0.2-...`` hold dots, so ``with_suffix`` would cut them)."""
    return stem.parent / (stem.name + suffix)


def read_item_embeddings(path: str | Path, num_items: int | None = None) -> tuple[torch.Tensor, dict]:
    """The ``[rows, dim]`` tensor and its metadata; a clear error for a missing, foreign or wrong-sized file."""
    path = Path(str(path)).expanduser()
    if path.suffix != ".safetensors":
        path = _beside(path, ".safetensors")
    if not path.is_file():
        raise DataError(f"item embeddings file {path} does not exist; write it with `recdistill embed-items`")
    try:
        emb = load_file(str(path))[EMBEDDINGS_KEY]
    except Exception as exc:  # safetensors raises its own error types for damaged files
        raise DataError(f"{path} is not an item embeddings file ({exc}); rewrite it with `recdistill embed-items`") from exc
    meta_file = _beside(path.with_suffix(""), ".json")
    meta = json.loads(meta_file.read_text()) if meta_file.is_file() else {}
    if num_items is not None and emb.shape[0] != num_items + 1:
        raise DataError(f"{path} holds {emb.shape[0] - 1} items, the dataset {num_items}; embed this dataset's "
                        "items with `recdistill embed-items` (same dataset settings)")
    return emb.float(), meta
