"""What every benchmark records about the machine it ran on: its fp32 matrix-product rate (the yardstick
for MFU and a sign of how loaded the machine was) and its load average."""

from __future__ import annotations

import os
import statistics
import time

import torch


def matmul_flops(n: int = 1024, seconds: float = 1.5) -> float:
    """Measured fp32 matrix-product FLOP/s at the current thread count: the median over short trials of
    an n x n product (2 n^3 FLOPs each)."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    rates, end = [], time.perf_counter() + seconds
    while time.perf_counter() < end or len(rates) < 5:
        start = time.perf_counter()
        a @ b
        rates.append(2 * n**3 / (time.perf_counter() - start))
    return statistics.median(rates)


def load_average() -> list[float]:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return []


def describe() -> dict:
    """The processor, cores and load average, as every result file records them."""
    from recdistill.engine.cpu_bf16 import model_name

    return {"cpu": model_name(), "cores": os.cpu_count(), "load_average_at_end": load_average(),
            "torch": torch.__version__}
