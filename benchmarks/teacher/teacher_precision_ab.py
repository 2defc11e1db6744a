"""The LLM teacher's precision on this CPU: fp32 against the bf16 paths, alternated in ONE process.

Arms (same SmolLM2 + iLoRA teacher, same seed, same batches):

* ``fp32``: fp32 weights, no autocast (``efficiency.precision=32-true llm.dtype=float32``);
* ``bf16-mixed``: fp32 weights under CPU bf16 autocast (``efficiency.precision=bf16-mixed``);
* ``bf16-base``: the frozen base in bf16, adapters / projector / gate fp32, under autocast (what ``auto``
  picks where bf16 pays: ``llm.dtype=auto efficiency.precision=auto``);
* ``bf16-true``: every weight in bf16, no autocast (Lightning's ``bf16-true``; adapters train in bf16).

Each round times one training step (forward, backward, AdamW step) of every arm on the same batch, then
the KV-shared candidate scoring of a few validation users (inference, no autocast change needed beyond the
base's dtype). The machine's probe (``recdistill.engine.cpu_bf16``) and the bare product rates are
recorded beside them, so the result says what ``auto`` decided here and whether the decision was right.

    python benchmarks/teacher/teacher_precision_ab.py [--rounds 4] [--batch-size 8] [--threads 2] [--score-users 16]

Writes ``<out>/cpu_bf16.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import platform
import statistics
import sys
import time
import types
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository root
sys.path.insert(0, str(ROOT))  # so that `benchmarks.*` imports work from any folder
RESULTS = ROOT / "benchmarks" / "results"

ARMS = ("fp32", "bf16-mixed", "bf16-base", "bf16-true")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--llm", default="smollm2-135m")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--batches", type=int, default=2, help="distinct batches, cycled")
    p.add_argument("--rounds", type=int, default=4, help="timed rounds after one warm-up round")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--score-users", type=int, default=16, help="validation users scored per arm per round (0: none)")
    p.add_argument("--arms", default=",".join(ARMS))
    p.add_argument("--note", default="", help="what else ran on the machine")
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args()

    import torch
    from benchmarks.common.machine import load_average
    from benchmarks.teacher.teacher_common import cache_dir, linear_gate_spec, llm_config, prepared, student_for
    from teacher_throughput import _batches

    from recdistill.engine.cpu_bf16 import cpu_bf16, model_name, probe_rates
    from recdistill.engine.optim import build_optimizer
    from recdistill.evaluation.candidates import CandidateProtocol, draw_candidate_sets
    from recdistill.teacher.candidate_protocol import CandidateProtocolSettings, teacher_scores
    from recdistill.teacher.build import build_encoder, build_teacher

    torch.set_num_threads(args.threads)
    arms = [a for a in args.arms.split(",") if a]
    data = prepared(None)
    student = student_for(data, None)
    models, optimizers = {}, {}
    loaded = None
    for arm in arms:
        torch.manual_seed(0)
        dtype = "bfloat16" if arm == "bf16-base" else "float32"
        model, loaded = build_teacher(llm_config(args.llm, dtype=dtype), linear_gate_spec(),
                                      student, cache_dir())
        if arm == "bf16-true":
            model.to(torch.bfloat16)
        models[arm] = model
        optimizers[arm] = build_optimizer(model, lr=1e-4)
    spec = types.SimpleNamespace(history=10, candidates=20, steps=args.batches, batch_size=args.batch_size)
    _, batches = _batches(spec, loaded.tokenizer, data, student)
    encoder = build_encoder(loaded.tokenizer, data, None, "titles")
    sets = draw_candidate_sets(data, "val", CandidateProtocol(history_items=10, num_candidates=20, exclude="all",
                                                             draws=1, seed=0, limit_users=args.score_users),
                               draw=0) if args.score_users else None
    score_settings = CandidateProtocolSettings(template=0, template_seed=0, batch_size=8, generate=False, likelihood=True,
                                               max_new_tokens=64, candidate_batch_size=64, score_norm="sum",
                                               kv_cache=True, min_new_tokens=0)

    def autocast(arm):
        if arm in ("bf16-mixed", "bf16-base"):
            return torch.autocast("cpu", dtype=torch.bfloat16)
        return contextlib.nullcontext()

    def train_step(arm, i):
        model, b = models[arm], batches[i]
        model.train()
        with autocast(arm):
            out = model(b["input_ids"], b["attention_mask"], b["item_slots"], b["student_seq"], labels=b["labels"])
        out.loss.backward()
        optimizers[arm].step()
        optimizers[arm].zero_grad(set_to_none=True)
        return float(out.loss.detach())

    def score(arm):
        models[arm].eval()
        with autocast(arm):
            return teacher_scores(models[arm], encoder, sets, score_settings).float()

    train_s = {a: [] for a in arms}
    score_s = {a: [] for a in arms}
    losses = {a: [] for a in arms}
    for r in range(args.rounds + 1):
        i = r % len(batches)
        for arm in arms:
            start = time.perf_counter()
            loss = train_step(arm, i)
            took = time.perf_counter() - start
            if r > 0:
                train_s[arm].append(took)
                losses[arm].append(loss)
            if sets is not None and (r > 0 or arm == arms[0]):
                start = time.perf_counter()
                score(arm)
                if r > 0:
                    score_s[arm].append(time.perf_counter() - start)
        print(f"round {r}: " + ", ".join(f"{a} {train_s[a][-1]:.2f} s" for a in arms if train_s[a]), flush=True)
    tokens = statistics.mean(int(b["attention_mask"].sum()) for b in batches)
    fp32_rate, bf16_rate = probe_rates()
    choice = cpu_bf16()
    base = statistics.median(train_s["fp32"]) if "fp32" in arms else None
    rows = {}
    for arm in arms:
        med = statistics.median(train_s[arm])
        rows[arm] = {"train_step_s": [round(x, 3) for x in train_s[arm]], "train_step_median_s": round(med, 3),
                     "tokens_per_s": round(tokens / med, 1),
                     "speedup_vs_fp32": round(base / med, 3) if base else None,
                     "score_s": [round(x, 3) for x in score_s[arm]],
                     "score_median_s": round(statistics.median(score_s[arm]), 3) if score_s[arm] else None,
                     "losses": [round(x, 4) for x in losses[arm]]}
    record = {"machine": {"model_name": model_name() or platform.processor(), "bf16_flags": list(choice.flags), "threads": args.threads,
                         "torch": torch.__version__, "load_average_end": load_average(), "note": args.note},
              "probe": {"fp32_gflops": round(fp32_rate, 1), "bf16_gflops": round(bf16_rate, 1),
                        "auto_decision": choice.to_dict()},
              "llm": args.llm, "batch_size": args.batch_size, "rounds": args.rounds,
              "mean_real_tokens_per_batch": tokens, "score_users": args.score_users, "arms": rows}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "cpu_bf16.json").write_text(json.dumps(record, indent=2) + "\n")
    md = ["# The teacher's precision on this CPU, alternated in one process", "",
          f"Machine: {record['machine']['model_name']}, flags {', '.join(choice.flags) or 'none'} listed, "
          f"{args.threads} threads, torch {torch.__version__}. {args.note}".rstrip(), "",
          f"Probe product [1024 x 576] x [576 x 1536]: fp32 {fp32_rate:.0f} GFLOP/s, bf16 {bf16_rate:.0f} GFLOP/s "
          f"({bf16_rate / fp32_rate:.2f}x). `auto` decided: **{'bf16' if choice.fast else 'fp32'}** ({choice.reason}).", "",
          f"{args.llm} + iLoRA, batch {args.batch_size} ({tokens:.0f} real tokens per batch), {args.rounds} timed rounds "
          "after a warm-up round; each round runs every arm on the same batch (forward, backward, AdamW step), then "
          f"scores {args.score_users} validation users x 20 candidates (KV-shared likelihood scoring).", "",
          "| arm | train step s (median) | real tokens/s | vs fp32 | scoring s (median) | losses |",
          "|---|---|---|---|---|---|"]
    for arm, row in rows.items():
        md.append(f"| {arm} | {row['train_step_median_s']:.2f} | {row['tokens_per_s']:.0f} | "
                  f"{row['speedup_vs_fp32']:.2f}x | {row['score_median_s'] if row['score_median_s'] is not None else '-'} | "
                  f"{', '.join(f'{x:.3f}' for x in row['losses'])} |")
    (out / "cpu_bf16.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
