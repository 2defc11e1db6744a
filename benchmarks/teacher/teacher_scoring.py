"""Candidate scoring: the shared prompt's KV cache reused for every candidate, against running every
candidate with its whole prompt, on the same prompts, candidates and model.

    python benchmarks/teacher/teacher_scoring.py                      # SmolLM2-135M, 8 ML-100K validation users, 20 candidates
    python benchmarks/teacher/teacher_scoring.py --llm tiny-llama --users 4

Writes ``benchmarks/results/teacher_scoring.json`` and ``.md``: seconds per prompt each way, the speed-up,
the largest score difference, and export-style rows per second (one row = one prompt's candidates ranked).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]  # the repository root
sys.path.insert(0, str(ROOT))  # so that `benchmarks.*` imports work from any folder
RESULTS = ROOT / "benchmarks" / "results"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--llm", default="smollm2-135m")
    p.add_argument("--prepared", default=None, help="a prepared dataset folder (default: ML-100K)")
    p.add_argument("--student", default=None, help="a student checkpoint (default: a random SASRec)")
    p.add_argument("--users", type=int, default=8, help="validation prompts scored")
    p.add_argument("--batch-size", type=int, default=4, help="prompts per call")
    p.add_argument("--candidates", type=int, default=20)
    p.add_argument("--chunk-size", type=int, default=40, help="candidate rows per forward, both ways")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from benchmarks.common.machine import load_average
    from benchmarks.teacher.teacher_common import cache_dir, linear_gate_spec, llm_config, prepared, prompt_settings, student_for

    from recdistill.teacher.prompt_encoder import PromptEncoder, load_templates
    from recdistill.teacher.build import build_teacher
    from recdistill.teacher.data import PromptCollator, PromptDataset, eval_samples
    from recdistill.teacher.scoring import score_candidates, score_full

    data = prepared(args.prepared)
    student = student_for(data, args.student)
    teacher, loaded = build_teacher(llm_config(args.llm), linear_gate_spec(), student, cache_dir())
    teacher.eval()
    enc = PromptEncoder(loaded.tokenizer, data.titles, load_templates())
    settings = prompt_settings(int(student.max_len), num_candidates=args.candidates)
    ds = PromptDataset(eval_samples(data, "val", data.users()[: args.users]), enc, data.num_items, settings, "val", False)
    collate = PromptCollator(enc.slot_id, settings.student_len, with_prompts=True)
    batches = [collate([ds[i] for i in range(s, min(s + args.batch_size, len(ds)))])
               for s in range(0, len(ds), args.batch_size)]
    prompt_tokens = [int(b["prompt_mask"].sum()) for b in batches]

    def run(fn):
        start = time.perf_counter()
        out = [fn(teacher, b, enc.answers, enc.slot_id, args.chunk_size) for b in batches]
        return time.perf_counter() - start, torch.cat(out)

    run(score_candidates) if args.llm == "tiny-llama" else None  # warm-up for the tiny model only
    load_before = load_average()
    t_cached, s_cached = run(score_candidates)
    t_full, s_full = run(score_full)
    n = len(ds)
    result = {
        "llm": args.llm, "prompts": n, "candidates": args.candidates, "batch_size": args.batch_size,
        "chunk_size": args.chunk_size, "threads": args.threads,
        "mean_prompt_tokens": round(sum(prompt_tokens) / n, 1),
        "kv_reuse_seconds": round(t_cached, 3), "full_prompt_seconds": round(t_full, 3),
        "kv_reuse_seconds_per_prompt": round(t_cached / n, 3), "full_prompt_seconds_per_prompt": round(t_full / n, 3),
        "speedup": round(t_full / t_cached, 2),
        "export_rows_per_second_kv_reuse": round(n / t_cached, 3),
        "export_rows_per_second_full": round(n / t_full, 3),
        "max_abs_score_difference": float((s_cached - s_full).abs().max()),
        "load_average_before": load_before, "load_average_after": load_average(),
        "note": "2-core CPU shared with other jobs; load averages are recorded with each run",
    }
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "teacher_scoring.json").write_text(json.dumps(result, indent=2) + "\n")
    md = ["# Candidate scoring: KV-cache reuse vs full prompts", "",
          f"{args.llm}, {n} validation prompts (mean {result['mean_prompt_tokens']} prompt tokens), "
          f"{args.candidates} candidates each, {args.threads} threads, batch {args.batch_size}, "
          f"{args.chunk_size} candidate rows per forward. Load average before/after: {load_before} / "
          f"{result['load_average_after']} (shared 2-core CPU).", "",
          "| way | seconds | seconds per prompt | rows/s |", "|---|---|---|---|",
          f"| KV cache reused | {t_cached:.2f} | {t_cached / n:.3f} | {n / t_cached:.3f} |",
          f"| every candidate with its full prompt | {t_full:.2f} | {t_full / n:.3f} | {n / t_full:.3f} |", "",
          f"Speed-up: **{result['speedup']}x**; largest score difference {result['max_abs_score_difference']:.2e}."]
    (out / "teacher_scoring.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
