"""What each cost cut of the CPU teacher buys: forward + backward + AdamW step of SmolLM2 with iLoRA on
the same training prompts, the variants alternated in ONE process so that load from other jobs on the
shared CPU hits them alike; ratios are taken per round against the baseline (iLoRA as published: titles
listed, plain shuffled batches, adapters in every layer).

Variants (``teacher.*`` knobs):
  titles            prompt.candidates=titles, plain batches (the baseline)
  titles+buckets    data.length_bucket_batches=50
  tokens+buckets    prompt.candidates=tokens ([CansEmb] only)
  none+buckets      prompt.candidates=none (history-only prompts)
  none+buckets+topN lora.top_layers=N (the projector frozen, backward stops at layer L-N)

Reported per variant: samples/s (the unit that matters: every variant trains on the same samples) and
real tokens/s, median over rounds, and the median per-round ratio of samples/s to the baseline's.

    python benchmarks/teacher/teacher_cpu_cuts.py [--rounds 3] [--batches 3] [--top-layers 10]

Writes ``<out>/teacher_cpu_cuts.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository root
sys.path.insert(0, str(ROOT))  # so that `benchmarks.*` imports work from any folder
RESULTS = ROOT / "benchmarks" / "results"


def _batches(data, tokenizer, student, listing: str, buckets: int, count: int, batch_size: int, last_n: int):
    import numpy as np

    from recdistill.teacher.prompt_encoder import PromptEncoder, load_templates
    from recdistill.teacher.buckets import bucketed_batches
    from recdistill.teacher.data import PromptCollator, PromptDataset, train_samples
    from benchmarks.teacher.teacher_common import prompt_settings

    enc = PromptEncoder(tokenizer, data.titles, load_templates(None, listing), listing)
    settings = prompt_settings(int(student.max_len), seed=0)
    ds = PromptDataset(train_samples(data, "last", last_n), enc, data.num_items, settings, "train", train=True)
    rng = np.random.default_rng(0)
    if buckets:
        groups = bucketed_batches(ds.token_lengths(), batch_size, rng, buckets)
    else:
        order = rng.permutation(len(ds))
        groups = [order[i: i + batch_size].tolist() for i in range(0, len(order), batch_size)]
    groups = [g for g in groups if len(g) == batch_size][:count]
    collate = PromptCollator(enc.slot_id, settings.student_len, with_prompts=False)
    return [collate([ds[i] for i in g]) for g in groups]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--llm", default="smollm2-135m")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--batches", type=int, default=3, help="distinct batches per variant, one per round, cycled")
    p.add_argument("--rounds", type=int, default=3, help="timed rounds (after a short warm-up forward per model)")
    p.add_argument("--top-layers", type=int, default=10)
    p.add_argument("--last-n", type=int, default=10, help="training positions per user the batches come from")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args()

    import torch
    from benchmarks.common.machine import load_average, matmul_flops
    from benchmarks.teacher.teacher_common import cache_dir, linear_gate_spec, llm_config, prepared, student_for

    from recdistill.engine.optim import build_optimizer
    from recdistill.teacher.build import build_teacher

    torch.set_num_threads(args.threads)
    data = prepared(None)
    student = student_for(data, None)
    models = {}
    for top in (None, args.top_layers):
        torch.manual_seed(0)
        teacher, loaded = build_teacher(llm_config(args.llm), linear_gate_spec(top_layers=top),
                                        student, cache_dir())
        teacher.train()
        models[top] = (teacher, build_optimizer(teacher, lr=8e-4))
    tok = loaded.tokenizer
    variants = {
        "titles": (None, "titles", 0),
        "titles+buckets": (None, "titles", 50),
        "tokens+buckets": (None, "tokens", 50),
        "none+buckets": (None, "none", 50),
        f"none+buckets+top{args.top_layers}": (args.top_layers, "none", 50),
    }
    batches = {name: _batches(data, tok, student, listing, buckets, args.batches, args.batch_size, args.last_n)
               for name, (_, listing, buckets) in variants.items()}

    def step(name, i):
        teacher, opt = models[variants[name][0]]
        b = batches[name][i % len(batches[name])]
        loss = teacher(b["input_ids"], b["attention_mask"], b["item_slots"], b["student_seq"], labels=b["labels"]).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)

    for teacher, _ in models.values():  # warm-up: one short forward + backward per model (first-call costs)
        b = batches["titles"][0]
        teacher(b["input_ids"][:1, -64:], b["attention_mask"][:1, -64:], b["item_slots"][:1, -64:],
                b["student_seq"][:1], labels=b["labels"][:1, -64:]).loss.backward()
        teacher.zero_grad(set_to_none=True)
    flops_before = matmul_flops()
    seconds = {name: [] for name in variants}
    for r in range(args.rounds):
        for name in variants:
            start = time.perf_counter()
            step(name, r)
            seconds[name].append(time.perf_counter() - start)
        print(f"round {r + 1}: " + ", ".join(f"{n} {s[-1]:.2f}s" for n, s in seconds.items()), flush=True)
    flops_after = matmul_flops()

    base = "titles"
    rows = {}
    for name, times in seconds.items():
        bs = batches[name]
        real = statistics.mean(int(b["attention_mask"].sum()) for b in bs)
        padded = statistics.mean(b["attention_mask"].numel() for b in bs)
        ratios = [seconds[base][k] / t for k, t in enumerate(times)]
        rows[name] = {"seconds_per_step": times, "samples_per_s": args.batch_size / statistics.median(times),
                      "real_tokens_per_s": real / statistics.median(times), "real_tokens_per_batch": real,
                      "padding_share": 1 - real / padded, "speedup_vs_titles_median": statistics.median(ratios),
                      "speedup_vs_titles_per_round": [round(x, 3) for x in ratios]}
    record = {"llm": args.llm, "batch_size": args.batch_size, "threads": args.threads, "rounds": args.rounds,
              "batches_from": f"train_positions=last, last_n={args.last_n}", "top_layers": args.top_layers,
              "matmul_gflops_before_after": [round(flops_before / 1e9, 1), round(flops_after / 1e9, 1)],
              "load_average": load_average(), "variants": rows}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "teacher_cpu_cuts.json").write_text(json.dumps(record, indent=2) + "\n")
    md = ["# CPU teacher: what each cost cut buys (forward + backward + AdamW step)", "",
          f"{args.llm} with iLoRA (r=8, K=4), batch {args.batch_size}, {args.threads} threads, {args.rounds} timed "
          f"rounds after a short warm-up forward per model, variants alternated in one process, batches from {record['batches_from']}. "
          f"Machine: 2-core CPU VM shared with other jobs (fp32 matmul {record['matmul_gflops_before_after'][0]} / "
          f"{record['matmul_gflops_before_after'][1]} GFLOP/s before / after; load average {record['load_average']}).", "",
          "| variant | real tokens / batch | padding | s / step (median) | samples / s | real tokens / s | "
          "speed-up vs titles (median of per-round ratios) |", "|---|---|---|---|---|---|---|"]
    for name, r in rows.items():
        md.append(f"| {name} | {r['real_tokens_per_batch']:.0f} | {100 * r['padding_share']:.0f} % | "
                  f"{statistics.median(r['seconds_per_step']):.2f} | {r['samples_per_s']:.2f} | {r['real_tokens_per_s']:.0f} | "
                  f"{r['speedup_vs_titles_median']:.2f}x |")
    md += ["", "Speed only: what each cut does to quality at a fixed budget is the learning curve's question "
           "(`benchmarks/teacher/teacher_learning_curve.py`)."]
    (out / "teacher_cpu_cuts.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
