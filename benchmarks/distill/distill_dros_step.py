"""What the DROS option (``distill.dros.enabled``) costs per training step.

DROS needs every position's logits over the whole catalogue at once, so the step leaves the fused
cross-entropy (which never holds the ``[P, N]`` logits) for the plain path. This times one forward +
backward of the distillation step, default settings otherwise, on ML-100K's shapes: a batch of 128
windows of 50 positions, 1,682 items, teacher top-10 at every position (the worst case), 1 negative.
The batch is random (timing does not depend on the values). Median of ``--steps`` steps after 2 warm-up
steps, variants interleaved.

    python benchmarks/distill/distill_dros_step.py   # writes benchmarks/results/distill_dros_step.{json,md}
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from recdistill.config import compose
from recdistill.distill.dros import propensity
from recdistill.distill.module import DistillModule
from recdistill.recipes.distill import distill_module
from recdistill.engine import atomic_write_json, atomic_write_text, describe_environment

ROOT = Path(__file__).resolve().parents[2]  # the repository root
RESULTS = ROOT / "benchmarks" / "results"
VARIANTS = {"fused CE + ranking term (default)": [], "DROS on (plain path)": ["distill.dros.enabled=true"]}


def batch(b: int, length: int, items: int, k: int, seed: int = 0) -> dict:
    g = torch.Generator().manual_seed(seed)
    inputs = torch.randint(1, items + 1, (b, length), generator=g)
    return {"inputs": inputs, "targets": torch.randint(1, items + 1, (b, length), generator=g),
            "users": torch.arange(b), "negatives": torch.randint(1, items + 1, (b, length, 1), generator=g),
            "teacher_items": torch.randint(1, items + 1, (b, length, k), generator=g),
            "teacher_confidences": torch.softmax(torch.randn(b, length, k, generator=g), -1)}


def module(overrides: list[str], items: int) -> DistillModule:
    cfg = compose("distill", ["distill.teacher_outputs=unused", "distill.ed.gamma=0", *overrides])
    m = distill_module(cfg, items)
    m.log = lambda *a, **k: None  # outside a Trainer
    m.dros_ps = propensity(torch.randint(0, 50, (items,)))
    return m


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=7)
    p.add_argument("--threads", type=int, default=2)
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    b, length, items, k = 128, 50, 1682, 10
    data = batch(b, length, items, k)
    modules = {name: module(o, items) for name, o in VARIANTS.items()}
    times: dict[str, list[float]] = {name: [] for name in VARIANTS}
    for step in range(args.steps + 2):
        for name, m in modules.items():
            start = time.perf_counter()
            m.training_step(data, 0).backward()
            m.zero_grad(set_to_none=True)
            if step >= 2:
                times[name].append(time.perf_counter() - start)
    med = {name: statistics.median(t) for name, t in times.items()}
    base = med["fused CE + ranking term (default)"]
    positions = b * length
    record = {"shapes": {"batch": b, "length": length, "items": items, "teacher_k": k}, "threads": args.threads,
              "seconds": times, "median_seconds": med, "ratio": {n: v / base for n, v in med.items()},
              "logits_mb": positions * items * 4 / 2**20, "environment": describe_environment()}
    atomic_write_json(RESULTS / "distill_dros_step.json", record)
    lines = ["# Cost of the DROS option per distillation step", "",
             f"One forward + backward of the distillation step, ML-100K shapes (batch {b} x {length} positions, "
             f"{items} items, teacher top-{k} at every position, 1 negative), {args.threads} threads, median of "
             f"{args.steps} steps. Machine: {record['environment'].get('device')}, shared with other jobs.", "",
             "| variant | ms per step | vs default |", "|---|---:|---:|"]
    lines += [f"| {n} | {v * 1000:.0f} | {v / base:.2f}x |" for n, v in med.items()]
    lines += ["", f"The plain path holds the `[P, N]` logits ({record['logits_mb']:.0f} MB in float32 for P = {positions} "
              "positions) and their gradient; DROS adds a second `[P_teacher, N]` product for the ranking term."]
    atomic_write_text(RESULTS / "distill_dros_step.md", "\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
