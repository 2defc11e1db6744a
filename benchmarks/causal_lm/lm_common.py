"""Helpers shared by the LM benchmarks: synthetic token files, matmul FLOP/s, model FLOPs, medians."""

from __future__ import annotations

import statistics
from pathlib import Path

import numpy as np

from recdistill.causal_lm.tokenizer import ByteTokenizer
from recdistill.causal_lm.tokens import TokenFile, write_token_files


def synthetic_tokens(folder: Path, tokens: int, seed: int = 0) -> TokenFile:
    """A token folder of random printable bytes. Throughput does not depend on what the text says, and
    this keeps the benchmark free of downloads."""
    if not (folder / "meta.json").is_file():
        rng = np.random.default_rng(seed)
        text = bytes(rng.integers(32, 127, size=tokens, dtype=np.uint8)).decode("ascii")
        docs = [text[i:i + 50_000] for i in range(0, len(text), 50_000)]
        write_token_files(docs, ByteTokenizer(), folder, val_fraction=0.05, seed=seed, progress=False)
    return TokenFile(folder)


def flops_per_token(model) -> float:
    """Training FLOPs per token, nanoGPT's / PaLM's estimate: 6 N (forward and backward through the
    weights, N without the position table) + 12 L d T (attention scores and weighted sums)."""
    cfg = model.cfg
    return 6 * model.num_parameters(exclude_positions=True) + 12 * cfg.n_layers * cfg.d_model * cfg.context_length


def median(values):
    values = [v for v in values if v is not None]
    return statistics.median(values) if values else None


def rss_now_mb() -> float:
    from recdistill.engine.memory import current_rss_mb

    rss = current_rss_mb()
    return float("nan") if rss is None else rss
