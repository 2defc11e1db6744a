"""fp32 against dynamic int8 (linear layers) for a preset's shape: forward tokens/s, size on disk, peak
memory, and perplexity. Without ``--checkpoint`` the weights are random (seeded), so only speed, size
and memory mean anything; for perplexity use ``recdistill lm eval <run>`` on a trained model.

    python benchmarks/causal_lm/lm_int8.py --preset small --context 256 --batch 2 --batches 4

Writes ``<out>/lm_int8_<preset>.json``.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository root
sys.path.insert(0, str(ROOT))  # so that `benchmarks.*` imports work from any folder
RESULTS = ROOT / "benchmarks" / "results"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--preset", default="small")
    p.add_argument("--checkpoint", default=None)
    p.add_argument("--context", type=int, default=256)
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--batches", type=int, default=4, help="evaluation batches per variant (the first is warm-up)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    from benchmarks.causal_lm.lm_common import synthetic_tokens

    from recdistill.engine.measure import StageTracker
    from recdistill.causal_lm.checkpoint import load_lm
    from recdistill.causal_lm.evaluate import evaluate_fp32_and_int8
    from recdistill.causal_lm.model import GPT, preset_config
    from recdistill.causal_lm.tokens import TokenWindows

    if args.checkpoint:
        def load():
            return load_lm(args.checkpoint)[0]
    else:
        def load():
            torch.manual_seed(0)
            return GPT(preset_config(args.preset, 257, context_length=args.context, dropout=0.0)).eval()

    tokens = synthetic_tokens(Path(tempfile.gettempdir()) / "recdistill-bench-tokens", 2_000_000)
    windows = TokenWindows(tokens.val, args.context, split="val")
    metrics = evaluate_fp32_and_int8(load, windows, StageTracker(), args.batch, args.batches, int8=True)
    metrics.update({"preset": args.preset, "context_length": args.context, "batch_size": args.batch,
                    "batches": args.batches, "threads": torch.get_num_threads(),
                    "weights": "checkpoint" if args.checkpoint else "random"})
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"lm_int8_{args.preset}.json").write_text(json.dumps(metrics, indent=2))
    print(json.dumps(metrics, indent=2))


if __name__ == "__main__":
    main()
