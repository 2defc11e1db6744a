"""What each LM preset costs in memory to train: parameters, the fp32 training state (weights, gradients,
AdamW's two moments: 16 bytes per parameter), and, for the presets given to ``--measure``, the measured
peak resident memory of real training steps (forward, backward, AdamW step) at batch 1 and the
preset's full context, with and without gradient checkpointing. Each measurement runs in its own
process; presets not measured are marked so.

    python benchmarks/causal_lm/lm_memory.py --measure tiny small

Writes ``<out>/lm_memory.json`` and ``<out>/lm_memory.md``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository root
sys.path.insert(0, str(ROOT))  # so that `benchmarks.*` imports work from any folder
RESULTS = ROOT / "benchmarks" / "results"

BYTE_VOCAB, GPT2_VOCAB = 257, 50257


def worker(preset: str, checkpointing: bool, steps: int) -> dict:
    import torch

    torch.set_num_threads(1)
    from benchmarks.causal_lm.lm_common import rss_now_mb

    from recdistill.engine.memory import peak_memory, reset_peak_memory
    from recdistill.causal_lm.model import GPT, preset_config

    cfg = preset_config(preset, BYTE_VOCAB, dropout=0.0, gradient_checkpointing=checkpointing)
    torch.manual_seed(0)
    model = GPT(cfg).train()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4, fused=True)
    x = torch.randint(0, BYTE_VOCAB, (1, cfg.context_length + 1))
    start_rss = rss_now_mb()
    reset_peak_memory()
    t0 = time.perf_counter()
    for _ in range(steps):  # the second step is the steady state: AdamW's moments exist from step one on
        model.loss(x[:, :-1], x[:, 1:]).backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
    return {"preset": preset, "gradient_checkpointing": checkpointing, "context_length": cfg.context_length,
            "batch_size": 1, "steps": steps, "seconds_per_step": (time.perf_counter() - t0) / steps,
            "rss_after_model_mb": start_rss, "peak_rss_mb": peak_memory()["peak_rss_mb"],
            "parameters": model.num_parameters()}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--measure", nargs="*", default=["tiny", "small"], help="presets to measure on this machine")
    p.add_argument("--steps", type=int, default=2)
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument("--worker", nargs=2, metavar=("PRESET", "CHECKPOINTING"), help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(args.worker[0], args.worker[1] == "1", args.steps)))
        return

    import torch

    from recdistill.causal_lm.model import GPT, PRESETS, preset_config

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows, records = [], []
    for preset in PRESETS:
        with torch.device("meta"):  # shapes only
            n_byte = GPT(preset_config(preset, BYTE_VOCAB)).num_parameters()
            n_gpt2 = GPT(preset_config(preset, GPT2_VOCAB)).num_parameters()
        record = {"preset": preset, **PRESETS[preset], "parameters_byte_vocab": n_byte,
                  "parameters_gpt2_vocab": n_gpt2, "fp32_training_state_mb": 16 * n_byte / 2**20, "measured": {}}
        for ckpt in (False, True):
            if preset not in args.measure:
                continue
            proc = subprocess.run([sys.executable, __file__, "--worker", preset, str(int(ckpt)), "--steps", str(args.steps)],
                                  capture_output=True, text=True, env=dict(os.environ, OMP_NUM_THREADS="1"))
            lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
            if proc.returncode != 0 or not lines:
                print(f"{preset} checkpointing={ckpt} failed:\n{proc.stderr[-1500:]}", file=sys.stderr)
                continue
            m = json.loads(lines[-1])
            record["measured"]["checkpointing" if ckpt else "plain"] = m
            print(f"{preset:7s} ckpt={ckpt!s:5s} peak {m['peak_rss_mb']:8.0f} MB  after model {m['rss_after_model_mb']:8.0f} MB"
                  f"  {m['seconds_per_step']:.1f} s/step", flush=True)
        records.append(record)
        plain, ck = record["measured"].get("plain"), record["measured"].get("checkpointing")
        measured = (f"{plain['peak_rss_mb']:,.0f} | {ck['peak_rss_mb']:,.0f}" if plain and ck else "not measured | not measured")
        rows.append(f"| {preset} | d{record['d_model']} l{record['n_layers']} h{record['n_heads']} ctx{record['context_length']} | "
                    f"{n_gpt2 / 1e6:.0f}M | {n_byte / 1e6:.1f}M | {record['fp32_training_state_mb']:,.0f} | {measured} |")
    md = (
        f"# LM presets: memory to train (fp32, CPU)\n\nMeasured {time.strftime('%Y-%m-%d %H:%M')} on "
        f"{os.cpu_count()} CPU cores, 1 thread, batch 1 at the preset's full context, {args.steps} AdamW steps, "
        "each setting in its own process. Peak RSS is the process's whole resident set (Python and PyTorch "
        "included, about 0.3-0.4 GB before the model exists). Training state = fp32 weights + gradients + "
        "AdamW moments = 16 bytes per parameter (byte-level vocabulary).\n\n"
        "| preset | shape | params (GPT-2 vocab) | params (byte vocab) | training state MB | peak RSS MB | "
        "peak RSS MB, gradient checkpointing |\n|---|---|---|---|---|---|---|\n" + "\n".join(rows) + "\n"
    )
    (out / "lm_memory.json").write_text(json.dumps(records, indent=2))
    (out / "lm_memory.md").write_text(md)
    print(md)


if __name__ == "__main__":
    main()
