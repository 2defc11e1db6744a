"""Speed of the SASRec student on ML-100K with the default settings.

Two measurements:

* **loop**: a stripped copy of the training step (the same data module, model, loss and AdamW as
  ``train student``, no Lightning): seconds per epoch over every training window, sequences (windows) and
  interactions (next-item targets) per second; then the evaluation of all users (full catalogue, seen
  items excluded, plus the sampled protocol), as ``validate`` runs it, median of ``--eval-repeats``.
* **engine** (``--engine``): ``train student`` itself for ``--engine-epochs`` epochs; its per-epoch
  training throughput and validation seconds from ``stages.json`` (Lightning's overhead included).

The fp32 matrix-product rate measured at the start says how loaded the machine was.

    python benchmarks/student/student_speed.py [--threads 2] [--epochs 3] [--engine] [key=value ...]

Writes ``<out>/student_speed.json`` and appends a markdown line to ``<out>/student_speed.md``.
Targets (issue 2, 2-core CPU): an epoch < 2 s, evaluating all users < 1 s.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]  # the repository root
sys.path.insert(0, str(ROOT))  # so that `benchmarks.*` imports work from any folder
RESULTS = ROOT / "benchmarks" / "results"


def matmul_gflops() -> float:
    from benchmarks.common.machine import matmul_flops

    return round(matmul_flops() / 1e9, 1)


def loop_benchmark(cfg, epochs: int, eval_repeats: int) -> dict:
    from recdistill.engine import build_optimizer, peak_memory, reset_peak_memory, seed_everything
    from recdistill.evaluation import metrics_from_ranks
    from recdistill.recipes.lifecycle import prepared_data
    from recdistill.recipes.student import build_datamodule, student_module
    from recdistill.student.module import sequence_loss

    seed_everything(int(cfg.efficiency.seed))
    data = prepared_data(cfg)
    dm = build_datamodule(cfg, data, "cpu")
    dm.setup()
    module = student_module(cfg, data.num_items)
    module.compile_model(cfg.efficiency.compile)
    model = module.model
    optimizer = build_optimizer(model, lr=float(cfg.train.lr), betas=tuple(cfg.train.betas),
                                fused=cfg.efficiency.fused_adamw)
    loader = dm.train_dataloader()

    def step(batch):
        loss = sequence_loss(model, batch, str(cfg.student.loss))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    model.train()
    for i, batch in enumerate(loader):  # warm-up: first allocations, compilation if on
        step(batch)
        if i == 2:
            break
    reset_peak_memory()
    epoch_seconds, epoch_cpu = [], []
    for _ in range(epochs):
        start, cpu = time.perf_counter(), time.process_time()
        for batch in loader:
            step(batch)
        epoch_seconds.append(time.perf_counter() - start)
        epoch_cpu.append(time.process_time() - cpu)
    train_peak = peak_memory()

    model.eval()
    eval_seconds, eval_cpu = [], []
    metrics = {}
    for _ in range(eval_repeats):
        start, cpu = time.perf_counter(), time.process_time()
        ranks = torch.cat([module.rank_batch(batch) for batch in dm.val_dataloader()])
        metrics = metrics_from_ranks(ranks[:, 1], cfg.eval.ks, "val/")
        eval_seconds.append(time.perf_counter() - start)
        eval_cpu.append(time.process_time() - cpu)
    epoch = statistics.median(epoch_seconds)
    return {
        "windows": len(dm.windows), "interactions": dm.windows.num_targets, "users": data.num_users,
        "items": data.num_items, "batches_per_epoch": len(loader),
        "epoch_seconds": [round(s, 3) for s in epoch_seconds], "epoch_seconds_median": round(epoch, 3),
        "sequences_per_second": round(len(dm.windows) / epoch, 1),
        "interactions_per_second": round(dm.windows.num_targets / epoch, 1),
        "eval_seconds": [round(s, 3) for s in eval_seconds], "eval_seconds_median": round(statistics.median(eval_seconds), 3),
        # CPU seconds used by this process (all its threads): on a machine shared with other jobs this is
        # closer to what the work costs than the wall time, which includes waiting for a core
        "epoch_cpu_seconds": [round(s, 3) for s in epoch_cpu],
        "eval_cpu_seconds": [round(s, 3) for s in eval_cpu],
        "eval_users": int(len(ranks)), "peak_rss_mb_train": train_peak.get("peak_rss_mb"),
        "val_ndcg@10_after_epochs": round(metrics.get("val/ndcg@10", float("nan")), 4),
    }


def engine_benchmark(overrides: list[str], epochs: int) -> dict:
    from recdistill.config import compose
    from recdistill.recipes.student import train_student

    with tempfile.TemporaryDirectory() as runs:
        cfg = compose("student", [*overrides, f"paths.runs_dir={runs}", f"train.max_epochs={epochs}",
                                  "train.early_stopping_patience=0", "run.progress_bar=false"])
        result = train_student(cfg)
    stages = result.stages
    epochs_ = [s for s in stages if s["stage"].startswith("epoch_")]
    validations = [s for s in stages if s["stage"].startswith("validation_")]
    return {
        "epoch_interactions_per_second": [s.get("interactions_per_second") for s in epochs_],
        "epoch_sequences_per_second": [s.get("sequences_per_second") for s in epochs_],
        "epoch_seconds_with_validation": [s["seconds"] for s in epochs_],
        "validation_seconds": [s["seconds"] for s in validations],
        "peak_rss_mb": max((s.get("peak_rss_mb") or 0) for s in stages),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--eval-repeats", type=int, default=5)
    parser.add_argument("--engine", action="store_true", help="also time `train student` itself")
    parser.add_argument("--engine-epochs", type=int, default=2)
    parser.add_argument("--note", default="", help="free text stored with the record (e.g. machine load)")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("overrides", nargs="*")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from recdistill.config import compose
    from recdistill.engine import describe_environment

    cfg = compose("student", args.overrides)
    gflops_before = matmul_gflops()
    loop = loop_benchmark(cfg, args.epochs, args.eval_repeats)
    record = {"benchmark": "student_speed", "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "dataset": cfg.dataset.name,
              "overrides": args.overrides, "threads": torch.get_num_threads(), "note": args.note,
              "matmul_gflops_before": gflops_before, "loop": loop}
    if args.engine:
        record["engine"] = engine_benchmark(args.overrides, args.engine_epochs)
    record["matmul_gflops_after"] = matmul_gflops()
    record["environment"] = describe_environment()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "student_speed.json").write_text(json.dumps(record, indent=2) + "\n")
    line = (f"| {record['time']} | {record['threads']} threads | epoch {loop['epoch_seconds_median']:.2f} s "
            f"({loop['windows']} windows, {loop['interactions']} interactions) | "
            f"{loop['sequences_per_second']:.0f} seq/s | eval {loop['eval_users']} users "
            f"{loop['eval_seconds_median']:.3f} s | CPU s/epoch {statistics.median(loop['epoch_cpu_seconds']):.2f}, "
            f"CPU s/eval {statistics.median(loop['eval_cpu_seconds']):.3f} | peak RSS {loop['peak_rss_mb_train']} MB | "
            f"matmul {gflops_before}/{record['matmul_gflops_after']} GFLOP/s | {' '.join(args.overrides) or 'defaults'} "
            f"| {args.note} |\n")
    with open(out / "student_speed.md", "a") as fh:
        fh.write(line)
    print(json.dumps(record["loop"], indent=2))
    if "engine" in record:
        print(json.dumps(record["engine"], indent=2))
    print(line, end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
