"""The tiny preset on Shakespeare: validation perplexity and training time, the figure docs/lm.md states.

    python benchmarks/causal_lm/lm_shakespeare.py train.max_steps=1000 train.val_every_steps=100
    python benchmarks/causal_lm/lm_shakespeare.py --from-run runs/<date>_lm_shakespeare_d128_l4   # render a finished run

Trains with ``recdistill lm train`` (the same recipe and defaults, plus the overrides given) and writes
``<out>/lm_shakespeare.json`` and ``.md``: best validation loss and perplexity (byte-level: nats and
perplexity per byte, also bits per byte), the int8 figures, training seconds, tokens seen, tokens/s.
"""

from __future__ import annotations

import argparse
import json
import math
import os
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository root
RESULTS = ROOT / "benchmarks" / "results"


def render(run: Path) -> tuple[dict, str]:
    metrics = json.loads((run / "metrics.json").read_text())
    stages = {s["stage"]: s for s in json.loads((run / "stages.json").read_text())}
    env = json.loads((run / "environment.json").read_text())
    progress = json.loads((run / "progress.json").read_text())
    fit = stages.get("fit", {})
    summary = {
        "run": run.name,
        "val_loss_nats_per_token": metrics["val/loss"],
        "val_ppl": metrics["val/ppl"],
        "val_bits_per_token": metrics["val/loss"] / math.log(2),
        "val_int8_ppl": metrics.get("val/int8_ppl"),
        "best_step": metrics.get("best/step"),
        "steps": metrics["train/steps"],
        "train_seconds": metrics["train/seconds"],
        "train_tokens": metrics["train/tokens"],
        "train_tokens_per_second": fit.get("tokens_per_second"),
        "peak_rss_mb": fit.get("peak_rss_mb"),
        "parameters": metrics["model/parameters"],
        "device": env.get("device"),
        "torch_threads": env.get("torch_threads"),
        "val_history": progress["history"]["val"],
    }
    md = (
        f"# Tiny preset on Shakespeare\n\nRun `{run.name}` on {summary['device']}, {summary['torch_threads']} "
        f"thread(s), machine shared with other jobs.\n\n"
        f"| parameters | steps | tokens seen | training time | tokens/s | best val loss (nats/byte) | "
        f"val perplexity (per byte) | bits/byte | int8 perplexity |\n|---|---|---|---|---|---|---|---|---|\n"
        f"| {summary['parameters']:,} | {summary['steps']} | {summary['train_tokens']:,} | "
        f"{summary['train_seconds'] / 60:.1f} min | {summary['train_tokens_per_second'] or float('nan'):,.0f} | "
        f"{summary['val_loss_nats_per_token']:.3f} | {summary['val_ppl']:.2f} | {summary['val_bits_per_token']:.2f} | "
        f"{summary['val_int8_ppl'] if summary['val_int8_ppl'] is None else round(summary['val_int8_ppl'], 2)} |\n\n"
        "Validation curve (step, loss): " + ", ".join(f"({s}, {v:.3f})" for s, v in summary["val_history"]) + "\n"
    )
    return summary, md


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("overrides", nargs="*", help="config overrides for lm train")
    p.add_argument("--from-run", default=None, help="render a finished run folder instead of training")
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args()
    if args.from_run:
        run = Path(args.from_run)
    else:
        import torch

        torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
        from recdistill.config import compose
        from recdistill.recipes.lm import train_lm

        run = train_lm(compose("lm", ["lm.corpus=shakespeare", "lm.preset=tiny", "lm.quantize=int8",
                                      *args.overrides])).run_dir
    summary, md = render(run)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "lm_shakespeare.json").write_text(json.dumps(summary, indent=2))
    (out / "lm_shakespeare.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
