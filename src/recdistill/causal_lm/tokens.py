"""Tokenize once into memory-mapped token files; training reads windows from them.

A token folder holds ``train.bin`` and ``val.bin`` (flat arrays of token ids, uint16 when the vocabulary
fits, else uint32, documents separated by the tokenizer's end-of-document id) and ``meta.json``. The
documents are shuffled with a fixed seed and the last ``val_fraction`` of the token stream is held out,
so a corpus of many documents (plays, conversations) gets a validation set drawn from all of them and a
single file still gets a split. The folder name carries a hash of everything that decides its content,
so a changed corpus or split gets a new folder and an unchanged one is reused.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from tqdm import tqdm

from recdistill.engine.rundir import atomic_folder, atomic_write_json
from recdistill.errors import DataError

FORMAT_VERSION = 1


def token_dtype(vocab_size: int):
    return np.uint16 if vocab_size <= np.iinfo(np.uint16).max + 1 else np.uint32


def _encode(tokenizer, text: str) -> np.ndarray:
    if tokenizer.name == "byte":  # the fast path: the bytes are the ids
        return np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    return np.asarray(tokenizer.encode(text), dtype=np.int64)


def write_token_files(docs: list[str], tokenizer, folder: str | Path, val_fraction: float = 0.1, seed: int = 0,
                      extra_meta: dict | None = None, progress: bool = True) -> Path:
    """Tokenize ``docs`` into ``folder`` (written under a temporary name, then renamed)."""
    if not 0.0 < val_fraction < 1.0:
        raise DataError(f"lm.val_fraction={val_fraction!r} is not valid; expected a number in (0, 1)")
    folder = Path(folder)
    dtype = token_dtype(tokenizer.vocab_size)
    order = np.random.default_rng(seed).permutation(len(docs))
    pieces = []
    eos = np.asarray([tokenizer.eos_id], dtype=dtype)
    for i in tqdm(order, desc="tokenizing", unit="doc", disable=not progress or len(docs) < 50, leave=False):
        ids = _encode(tokenizer, docs[i])
        if ids.size:
            pieces.append(ids.astype(dtype, copy=False))
            pieces.append(eos)
    if not pieces:
        raise DataError("the corpus tokenized to nothing; give text with at least a few characters")
    stream = np.concatenate(pieces)
    n_val = max(1, int(round(len(stream) * val_fraction)))
    train, val = stream[:-n_val], stream[-n_val:]
    # another process may finish the same folder first; then theirs is kept
    with atomic_folder(folder, keep_existing=True) as tmp:
        train.tofile(tmp / "train.bin")
        val.tofile(tmp / "val.bin")
        meta = {
            "format_version": FORMAT_VERSION,
            "tokenizer": tokenizer.name,
            "vocab_size": int(tokenizer.vocab_size),
            "eos_id": int(tokenizer.eos_id),
            "dtype": np.dtype(dtype).name,
            "documents": len(docs),
            "train_tokens": int(train.size),
            "val_tokens": int(val.size),
            "val_fraction": val_fraction,
            "seed": seed,
            **(extra_meta or {}),
        }
        atomic_write_json(tmp / "meta.json", meta)
    return folder


def corpus_fingerprint(corpus: str, tokenizer_name: str, val_fraction: float, seed: int) -> str:
    """A hash of what decides a token folder's content. For a path: every file's name, size and mtime."""
    parts = [str(FORMAT_VERSION), corpus, tokenizer_name, repr(float(val_fraction)), str(seed)]
    path = Path(corpus).expanduser()
    if path.exists():
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
        parts += [f"{f}:{f.stat().st_size}:{f.stat().st_mtime_ns}" for f in files]
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]


class TokenFile:
    """The token folder, opened read-only with memory maps."""

    def __init__(self, folder: str | Path):
        self.folder = Path(folder)
        meta_path = self.folder / "meta.json"
        if not meta_path.is_file():
            raise DataError(f"{self.folder} is not a token folder (no meta.json)")
        self.meta = json.loads(meta_path.read_text())
        dtype = np.dtype(self.meta["dtype"])
        self.train = np.memmap(self.folder / "train.bin", dtype=dtype, mode="r")
        self.val = np.memmap(self.folder / "val.bin", dtype=dtype, mode="r")

    @property
    def vocab_size(self) -> int:
        return int(self.meta["vocab_size"])

    def split(self, name: str) -> np.ndarray:
        if name not in ("train", "val"):
            raise ValueError(f"split must be train or val, not {name!r}")
        return self.train if name == "train" else self.val


class TokenWindows(Dataset):
    """Windows of ``context + 1`` tokens from a token array: input = first ``context``, target = the
    same shifted by one. Window ``i`` starts at ``i * stride``; the array is read lazily from the map."""

    def __init__(self, tokens: np.ndarray, context: int, stride: int | None = None, split: str = "train"):
        stride = int(stride or context)
        if context <= 0 or stride <= 0:
            raise DataError(f"context ({context}) and stride ({stride}) must be > 0")
        if len(tokens) < context + 1:
            raise DataError(
                f"the {split} split has {len(tokens)} tokens, fewer than lm.context_length + 1 = {context + 1}; "
                "use a shorter lm.context_length, more text, or a larger lm.val_fraction"
            )
        self.tokens, self.context, self.stride = tokens, context, stride
        self.n = (len(tokens) - context - 1) // stride + 1

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int):
        start = int(i) * self.stride
        chunk = torch.from_numpy(np.asarray(self.tokens[start:start + self.context + 1], dtype=np.int64))
        return chunk[:-1], chunk[1:]
