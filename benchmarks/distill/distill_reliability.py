"""``distill.kd.reliability``: distilling only the positions where the teacher is likely right, against
DLLM2Rec's weights alone (every exported position, reweighted by position, confidence and consistency).

The teacher is the gate's SASRec (hidden 128, 2 blocks, 2 heads, trained to convergence, seed 0; exported at
each user's last 40 training positions, top-20 of the catalogue: ``distill/distill_sasrec_teacher.py``'s
steps, reused), the student the default one; embedding distillation off in every arm (``ed.gamma=0``), so the
arms differ only in which positions the ranking term reads. Arms per seed: the student alone,
``reliability=none`` (DLLM2Rec), ``reliability=teacher_hit`` (positions whose teacher list holds the training
target). Resumable: each run is recorded under ``--state`` as it finishes.

    python benchmarks/distill/distill_reliability.py --seeds 0 1 2 [--work runs/distill_reliability]

Writes ``benchmarks/results/distill_reliability.{json,md}``: val and test NDCG@10 per arm and seed, the share
of exported positions each rule kept, and the paired differences over seeds with 95 % t intervals.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from benchmarks.common.machine import describe as machine  # noqa: E402
from benchmarks.distill import distill_sasrec_teacher as gate  # noqa: E402
from recdistill.engine import atomic_write_json, atomic_write_text  # noqa: E402
from recdistill.report.aggregate import interval_text, paired_interval  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
ARMS = {"dllm2rec": ["distill.ed.gamma=0"],
        "teacher_hit": ["distill.ed.gamma=0", "distill.kd.reliability=teacher_hit"]}
SPLITS = ("val", "test")


def gate_args(args) -> argparse.Namespace:
    """The gate script's settings at its defaults, with one teacher seed and this script's folders."""
    return argparse.Namespace(
        seeds=args.seeds, epochs=200, patience=10, teacher_epochs=200, teacher_patience=10, teacher_hidden=128,
        teacher_blocks=2, teacher_heads=2, teacher_dropout=0.2, teacher_seeds=[0], teacher_max_len=50, top_k=20,
        positions="last", last_n=40, threads=1, work=args.work, state=args.state, baseline_from=None,
        distill_overrides=[], confirm_seeds=[])


def paired(base: dict, other: dict) -> dict:
    return {split: paired_interval({s: r["metrics"][f"{split}/ndcg@10"] for s, r in base.items()},
                                   {s: r["metrics"][f"{split}/ndcg@10"] for s, r in other.items()}) for split in SPLITS}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--work", default=str(ROOT / "runs" / "distill_reliability"))
    parser.add_argument("--state", default=None, help="per-run records (default: <work>/state)")
    parser.add_argument("--note", default="", help="what else ran on the machine")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    args.state = args.state or str(Path(args.work) / "state")

    g = gate_args(args)
    teacher = gate.run_teacher(g)
    export = gate.run_export(g, teacher)
    runs = {"student alone": {s: gate.run_student(g, s) for s in args.seeds}}
    for arm, overrides in ARMS.items():
        g.distill_overrides = overrides
        runs[arm] = {s: gate.run_distilled(g, s, export) for s in args.seeds}

    rows = {arm: {str(s): {"val/ndcg@10": r["metrics"]["val/ndcg@10"], "test/ndcg@10": r["metrics"]["test/ndcg@10"],
                           "best_epoch": r["metrics"].get("best_epoch"),
                           "teacher_coverage": r["metrics"].get("teacher_coverage"),
                           "teacher_positions_kept": r["metrics"].get("teacher_positions_kept")}
                  for s, r in by_seed.items()} for arm, by_seed in runs.items()}
    comparisons = {"teacher_hit - dllm2rec": paired(runs["dllm2rec"], runs["teacher_hit"]),
                   "dllm2rec - student alone": paired(runs["student alone"], runs["dllm2rec"]),
                   "teacher_hit - student alone": paired(runs["student alone"], runs["teacher_hit"])}
    record = {"measured_at": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(), "note": args.note,
              "teacher": {"tag": teacher.get("tag"), "metrics": teacher.get("metrics")}, "export": export,
              "seeds": args.seeds, "users": 943, "arms": rows, "paired": comparisons}
    out = Path(args.out)
    atomic_write_json(out / "distill_reliability.json", record)
    lines = ["# Which positions to distil: `distill.kd.reliability` against DLLM2Rec's weights", "",
             f"Measured {record['measured_at']} on {record['machine']['cpu']} ({record['machine']['cores']} cores, "
             f"load average at the end {record['machine']['load_average_at_end']}; {args.note or 'nothing else noted'}), "
             f"ML-100K (943 users), full catalogue, seeds {', '.join(map(str, args.seeds))}. Teacher: a SASRec "
             f"(hidden 128, 2 blocks, seed 0) with test NDCG@10 {teacher['metrics']['test/ndcg@10']:.4f}, exported at "
             f"each user's last 40 training positions ({export['rows']} rows, top-{export['top_k']}); student: the "
             "default; `ed.gamma=0` in every arm, `kd.weight=0.8`.", "",
             "| arm | val NDCG@10 per seed | test NDCG@10 per seed | positions distilled |", "|---|---|---|---|"]
    for arm, by_seed in rows.items():
        kept = [r["teacher_coverage"] for r in by_seed.values() if r["teacher_coverage"] is not None]
        val = ", ".join(f"{r['val/ndcg@10']:.4f}" for r in by_seed.values())
        test = ", ".join(f"{r['test/ndcg@10']:.4f}" for r in by_seed.values())
        lines.append(f"| {arm} | {val} | {test} | "
                     + (f"{100 * sum(kept) / len(kept):.1f} % of training targets" if kept else "–") + " |")
    lines += ["", "Paired differences over seeds (95 % t interval):", ""]
    for name, c in comparisons.items():
        lines.append(f"- {name}: val {interval_text(c['val'])}, test {interval_text(c['test'])}")
    atomic_write_text(out / "distill_reliability.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
