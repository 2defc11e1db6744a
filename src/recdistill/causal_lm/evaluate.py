"""Perplexity, speed, size and peak memory of a model, fp32 and dynamic int8.

Peak memory on the CPU is the process's peak resident set during the evaluation (the engine's memory
probe, reset when the evaluation starts), so it includes the Python interpreter and the loaded
libraries; ``rss_before_mb`` is the resident set when the evaluation started, and the difference is
what the evaluation itself added. The fp32 model is released before the int8 one is measured.
"""

from __future__ import annotations

import gc
import math
import time

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from recdistill.engine.measure import StageTracker, measure_stage
from recdistill.engine.memory import current_rss_mb
from recdistill.causal_lm.quantize import quantize_int8, size_on_disk
from recdistill.causal_lm.tokens import TokenWindows


@torch.no_grad()
def perplexity(model, windows: TokenWindows, batch_size: int = 32, max_batches: int | None = None,
               progress: bool = False, desc: str = "eval") -> dict:
    """Mean next-token loss over the windows, its perplexity, and forward-pass tokens per second
    (the first batch is a warm-up and is not timed)."""
    model.eval()
    loader = DataLoader(windows, batch_size=batch_size, shuffle=False)
    total = len(loader) if max_batches is None else min(len(loader), int(max_batches))
    loss_sum, tokens, timed_tokens, timed_seconds = 0.0, 0, 0, 0.0
    for i, (x, y) in enumerate(tqdm(loader, total=total, desc=desc, disable=not progress, leave=False)):
        if i >= total:
            break
        start = time.perf_counter()
        logits = model(x)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, logits.size(-1)).float(), y.reshape(-1),
                                                 reduction="sum")
        seconds = time.perf_counter() - start
        loss_sum += float(loss)
        tokens += y.numel()
        if i > 0 or total == 1:
            timed_tokens += y.numel()
            timed_seconds += seconds
    mean = loss_sum / max(1, tokens)
    return {
        "loss": mean,
        "ppl": math.exp(min(mean, 50.0)),
        "tokens": tokens,
        "tokens_per_second": timed_tokens / timed_seconds if timed_seconds > 0 else None,
    }


def evaluate_variant(model, windows: TokenWindows, name: str, tracker: StageTracker, batch_size: int,
                     max_batches: int | None, progress: bool) -> dict:
    rss_before = current_rss_mb()
    with measure_stage(tracker, f"eval_{name}") as stage:
        result = perplexity(model, windows, batch_size, max_batches, progress, desc=f"eval {name}")
        stage.add({"tokens": result["tokens"]})
    record = tracker.records[-1]
    return {
        **result,
        "size_on_disk_mb": size_on_disk(model) / 2**20,
        "peak_rss_mb": record.get("peak_rss_mb"),
        "rss_before_mb": rss_before,
        "seconds": record["seconds"],
    }


def evaluate_fp32_and_int8(load_model, windows: TokenWindows, tracker: StageTracker, batch_size: int = 32,
                           max_batches: int | None = None, int8: bool = True, progress: bool = False) -> dict:
    """Metrics keyed ``val/<name>`` for fp32 and, with ``int8``, ``val/int8_<name>`` plus the ratios.

    ``load_model`` is a function returning a fresh fp32 model: this function holds the only reference,
    so the fp32 weights are really released before the int8 copy is measured."""
    model = load_model()
    metrics: dict = {"model/parameters": model.num_parameters()}
    fp32 = evaluate_variant(model, windows, "fp32", tracker, batch_size, max_batches, progress)
    metrics.update({f"val/{k}": v for k, v in fp32.items()})
    if int8:
        qmodel = quantize_int8(model)
        del model
        gc.collect()
        q = evaluate_variant(qmodel, windows, "int8", tracker, batch_size, max_batches, progress)
        metrics.update({f"val/int8_{k}": v for k, v in q.items()})
        metrics["int8/ppl_ratio"] = q["ppl"] / fp32["ppl"]
        metrics["int8/size_ratio"] = q["size_on_disk_mb"] / fp32["size_on_disk_mb"]
        if q["tokens_per_second"] and fp32["tokens_per_second"]:
            metrics["int8/speedup"] = q["tokens_per_second"] / fp32["tokens_per_second"]
    return metrics
