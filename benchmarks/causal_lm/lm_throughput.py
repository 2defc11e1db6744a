"""Training throughput of the LM workload: our engine (optimised and ``efficiency=none``) against a
plain, well-written PyTorch loop of the same model and batch (nanoGPT's loop, stripped).

Each measurement runs in its own process (fresh peak-memory counter, no state carried over) and the
variants are interleaved round-robin, ``--repeats`` times, so a change in the machine's load hits all of
them alike; the tables report medians. Every worker first measures the fp32 matrix-product FLOP/s at
its own thread count, and MFU is the model's training FLOP/s over that.

    python benchmarks/causal_lm/lm_throughput.py --presets tiny small --repeats 3

Writes ``<out>/lm_throughput.json`` (every trial) and ``<out>/lm_throughput.md`` (medians).

Variants:
    plain             nanoGPT-style loop: SDPA attention, torch's dropout, fused AdamW,
                      zero_grad(set_to_none=True), random windows from the memory-mapped token file
    plain_uniform     the same loop with the engine's model setting uniform_dropout=True (dropout masks
                      from uniform draws): separates the loop's overhead from the layer's gain
    engine_optimised  recdistill's Lightning recipe, efficiency=default (uniform_dropout on), fused AdamW on,
                      SDPA attention
    engine_none       recdistill's Lightning recipe, efficiency=none (every optimisation off), eager attention
    engine_compile    engine_optimised plus torch.compile (only with --compile; compiling takes minutes on a CPU)
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository root
sys.path.insert(0, str(ROOT))  # so that `benchmarks.*` imports work from any folder
RESULTS = ROOT / "benchmarks" / "results"

# shapes per preset for this CPU: (context_length, batch_size). small at its full 1024 context takes
# minutes per step on 2 cores, so it is measured at 256 (stated in the tables).
SHAPES = {"tiny": (128, 16), "small": (256, 2), "medium": (256, 1), "large": (256, 1)}
VARIANTS = ("plain", "plain_uniform", "engine_optimised", "engine_none")


def worker(args) -> dict:
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)
    from benchmarks.causal_lm.lm_common import flops_per_token, rss_now_mb, synthetic_tokens
    from benchmarks.common.machine import matmul_flops

    from recdistill.engine.memory import peak_memory, reset_peak_memory
    from recdistill.causal_lm.model import GPT, preset_config

    peak_flops = matmul_flops()
    context, batch = args.context, args.batch
    total_steps = args.warmup + args.steps
    tokens = synthetic_tokens(Path(args.data), tokens=max(2_000_000, 2 * total_steps * batch * (context + 1)))
    result = {"variant": args.variant, "preset": args.preset, "context_length": context, "batch_size": batch,
              "threads": torch.get_num_threads(), "matmul_flops": peak_flops, "warmup_steps": args.warmup,
              "measured_steps": args.steps}
    torch.manual_seed(0)

    if args.variant in ("plain", "plain_uniform"):
        cfg = preset_config(args.preset, tokens.vocab_size, context_length=context, dropout=args.dropout,
                            uniform_dropout=args.variant == "plain_uniform")
        model = GPT(cfg)
        decay = [p for p in model.parameters() if p.dim() >= 2]
        no_decay = [p for p in model.parameters() if p.dim() < 2]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1}, {"params": no_decay, "weight_decay": 0.0}],
                                lr=1e-3, betas=(0.9, 0.95), fused=True)
        data = tokens.train
        rng = np.random.default_rng(0)

        def get_batch():
            ix = rng.integers(0, len(data) - context - 1, size=batch)
            chunk = torch.from_numpy(np.stack([data[i:i + context + 1] for i in ix]).astype(np.int64))
            return chunk[:, :-1], chunk[:, 1:]

        model.train()
        result["rss_start_mb"] = rss_now_mb()
        reset_peak_memory()
        start = None
        for step in range(total_steps):
            if step == args.warmup:
                start = time.perf_counter()
            x, y = get_batch()
            loss = model.loss(x, y)
            loss.backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
        seconds = time.perf_counter() - start
        result["tokens_per_second"] = args.steps * batch * context / seconds
        result["peak_rss_mb"] = peak_memory()["peak_rss_mb"]
        result["final_loss"] = float(loss.detach())
    else:
        from recdistill.config import compose
        from recdistill.engine import StageMeter, build_trainer
        from recdistill.recipes.lifecycle import efficiency, optimizer_settings
        from recdistill.recipes.lm import model_config
        from recdistill.causal_lm.module import LMDataModule, LMModule, tokens_in_batch

        overrides = {
            "engine_optimised": ["efficiency=default", "efficiency.fused_adamw=true", "lm.attention=sdpa"],
            "engine_compile": ["efficiency=default", "efficiency.fused_adamw=true", "lm.attention=sdpa",
                               "efficiency.compile=true"],
            "engine_none": ["efficiency=none", "lm.attention=eager"],
        }[args.variant]
        cfg = compose("lm", [*overrides, f"lm.preset={args.preset}", f"lm.context_length={context}",
                             f"lm.dropout={args.dropout}", f"train.batch_size={batch}", f"train.max_steps={total_steps}",
                             "efficiency.accelerator=cpu", f"efficiency.measure_warmup_steps={args.warmup}"])
        model_cfg = model_config(cfg, tokens.vocab_size)
        module = LMModule(model_cfg.to_dict(), optimizer_settings(cfg), efficiency(cfg), compile=bool(cfg.efficiency.compile))
        data = LMDataModule(tokens, context, batch, batch, efficiency(cfg))
        meter = StageMeter(items_fn=tokens_in_batch, unit="tokens", warmup_steps=args.warmup)
        trainer = build_trainer(efficiency(cfg), None, callbacks=[meter], max_epochs=-1, max_steps=total_steps,
                                limit_val_batches=0, progress_bar=False, loggers=False)
        result["rss_start_mb"] = rss_now_mb()
        trainer.fit(module, datamodule=data)
        fit = next(r for r in meter.records if r["stage"] == "fit")
        result["tokens_per_second"] = fit["tokens_per_second"]
        result["peak_rss_mb"] = fit["peak_rss_mb"]
        result["precision"] = trainer.precision
        model = module.model
    result["parameters"] = model.num_parameters()
    result["flops_per_token"] = flops_per_token(model)
    result["mfu"] = result["flops_per_token"] * result["tokens_per_second"] / peak_flops
    return result


def run_trial(args, preset: str, variant: str) -> dict | None:
    context, batch = SHAPES[preset]
    cmd = [sys.executable, __file__, "--worker", "--preset", preset, "--variant", variant,
           "--context", str(args.context or context), "--batch", str(args.batch or batch),
           "--steps", str(args.steps if preset == "tiny" else args.big_steps),
           "--warmup", str(args.warmup if preset == "tiny" else args.big_warmup),
           "--threads", str(args.threads), "--dropout", str(args.dropout), "--data", str(args.data_dir)]
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env)
    lines = [l for l in proc.stdout.splitlines() if l.startswith("{")]
    if proc.returncode != 0 or not lines:
        print(f"  {preset}/{variant} failed:\n{proc.stderr[-2000:]}", file=sys.stderr)
        return None
    return json.loads(lines[-1])


def render(trials: list[dict], meta: dict) -> str:
    from benchmarks.causal_lm.lm_common import median

    rows = []
    # MFU against the best fp32 matmul rate any run measured: on a shared machine a single run's own
    # reading can be taken at a quiet or a busy moment, and a low reading would inflate its MFU.
    peak = max(t["matmul_flops"] for t in trials)
    for t in trials:
        t["mfu_vs_best_matmul"] = t["flops_per_token"] * t["tokens_per_second"] / peak
    presets = sorted({t["preset"] for t in trials}, key=list(SHAPES).index)
    variants = [v for v in (*VARIANTS, "engine_compile") if any(t["variant"] == v for t in trials)]
    for preset in presets:
        base = median([t["tokens_per_second"] for t in trials if t["preset"] == preset and t["variant"] == "plain"])
        for variant in variants:
            sel = [t for t in trials if t["preset"] == preset and t["variant"] == variant]
            if not sel:
                continue
            tps = median([t["tokens_per_second"] for t in sel])
            rows.append(
                f"| {preset} | {variant} | {sel[0]['context_length']} x {sel[0]['batch_size']} | {len(sel)} | "
                f"{tps:,.0f} | {min(t['tokens_per_second'] for t in sel):,.0f}–{max(t['tokens_per_second'] for t in sel):,.0f} | "
                f"{(tps / base if base else float('nan')):.2f} | {100 * median([t['mfu_vs_best_matmul'] for t in sel]):.1f}% | "
                f"{median([t['matmul_flops'] for t in sel]) / 1e9:.1f} | {median([t['peak_rss_mb'] for t in sel]):,.0f} | "
                f"{median([t['rss_start_mb'] for t in sel]):,.0f} |"
            )
    head = (
        f"# LM training throughput\n\nMachine: {meta['machine']}; {meta['threads']} thread(s) per run; measured "
        f"{meta['date']}. The machine was shared with other jobs (load average {meta['load']}), so every "
        "figure is the median of the interleaved runs counted in the 'runs' column, each in its own process; "
        "the range shows the spread.\n\n"
        "| preset | variant | context x batch | runs | tokens/s (median) | range | vs plain loop | MFU | "
        "matmul GFLOP/s | peak RSS MB | RSS at start MB |\n|---|---|---|---|---|---|---|---|---|---|---|"
    )
    notes = (
        f"\n\nMFU = model training FLOPs per token (6 N + 12 L d T) x tokens/s / the best fp32 matrix-product "
        f"rate measured in this session ({peak / 1e9:.1f} GFLOP/s: 1024 x 1024 products at the same thread count, "
        "measured by every run just before it trained; the 'matmul GFLOP/s' column is the median of those "
        "readings and shows how much the load moved). Peak RSS is the "
        "process's peak resident set while training (it includes Python, PyTorch and, for the engine, "
        "Lightning; 'RSS at start' is the resident set just before the first step). Variants: see the "
        "docstring of benchmarks/causal_lm/lm_throughput.py.\n"
    )
    return head + "\n" + "\n".join(rows) + notes


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--presets", nargs="+", default=["tiny", "small"])
    p.add_argument("--variants", nargs="+", default=list(VARIANTS))
    p.add_argument("--compile", action="store_true", help="add the engine_compile variant")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--steps", type=int, default=30, help="measured steps for tiny")
    p.add_argument("--big-steps", type=int, default=3, help="measured steps for small and larger")
    p.add_argument("--warmup", type=int, default=3, help="unmeasured first steps for tiny")
    p.add_argument("--big-warmup", type=int, default=1, help="unmeasured first steps for small and larger")
    p.add_argument("--big-repeats", type=int, default=None, help="repeats for small and larger (default --repeats)")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--dropout", type=float, default=0.1)
    p.add_argument("--context", type=int, default=None)
    p.add_argument("--batch", type=int, default=None)
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument("--data-dir", default=os.path.join(tempfile.gettempdir(), "recdistill-bench-tokens"),
                   help="where the synthetic token file is written (outside the repository)")
    # worker mode
    p.add_argument("--render", default=None, metavar="JSON", help="re-render the tables from a results JSON")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--preset", default="tiny", help=argparse.SUPPRESS)
    p.add_argument("--variant", default="plain", help=argparse.SUPPRESS)
    p.add_argument("--data", default=None, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.worker:
        print(json.dumps(worker(args)))
        return
    if args.render:
        saved = json.loads(Path(args.render).read_text())
        md = render(saved["trials"], saved["meta"])
        Path(args.render).with_suffix(".md").write_text(md)
        print(md)
        return

    import platform

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    variants = [*args.variants, *(["engine_compile"] if args.compile else [])]
    trials = []
    for repeat in range(args.repeats):
        for preset in args.presets:
            if preset != "tiny" and args.big_repeats is not None and repeat >= args.big_repeats:
                continue
            for variant in variants:
                t = run_trial(args, preset, variant)
                if t:
                    t["repeat"] = repeat
                    trials.append(t)
                    print(f"  [{repeat}] {preset:6s} {variant:17s} {t['tokens_per_second']:9.0f} tok/s  "
                          f"MFU {100 * t['mfu']:.1f}%  peak {t['peak_rss_mb']:.0f} MB", flush=True)
    meta = {"machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
            "threads": args.threads, "date": time.strftime("%Y-%m-%d %H:%M"), "repeats": args.repeats,
            "load": " / ".join(f"{x:.1f}" for x in os.getloadavg())}
    (out / "lm_throughput.json").write_text(json.dumps({"meta": meta, "trials": trials}, indent=2))
    (out / "lm_throughput.md").write_text(render(trials, meta))
    print((out / "lm_throughput.md").read_text())


if __name__ == "__main__":
    main()
