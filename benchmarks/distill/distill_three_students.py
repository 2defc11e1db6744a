"""Distillation into each of DLLM2Rec's three students (SASRec, GRU4Rec, Caser) from one teacher's outputs,
against the same student trained alone, paired by seed.

The teacher outputs are the gate's (``distill/distill_sasrec_teacher.py``: a SASRec of hidden 128 exported at
each user's last 40 training positions, top-20; pass its folder); ranking distillation only (``ed.gamma=0``, the
setting the gate chose on validation), ``kd.weight=0.8``, every other setting the student's default. The
students alone come from ``student/student_quality.py``'s result files (``--result-name
student_quality_<name>``: the same defaults and seeds), so only the distilled runs are trained here.

    python benchmarks/distill/distill_three_students.py --teacher-outputs DIR --students gru4rec caser --seeds 0 1 2

Writes ``benchmarks/results/distill_three_students.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from benchmarks.common.machine import describe as machine  # noqa: E402
from recdistill.config import compose  # noqa: E402
from recdistill.engine import atomic_write_json, atomic_write_text  # noqa: E402
from recdistill.report.aggregate import interval_text, paired_interval  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"


def alone(name: str) -> dict:
    """seed -> the student-alone run's metrics, from student_quality_<name>.json (sasrec: student_quality_fused)."""
    file = RESULTS / ("student_quality_fused.json" if name == "sasrec" else f"student_quality_{name}.json")
    return {int(r["seed"]): r for r in json.loads(file.read_text())["runs"]}


def save_student(out: Path, name: str, entry: dict) -> None:
    """Write this student's entry into the result file as it is now on disk (several processes may each run
    one student side by side)."""
    record = json.loads(out.read_text()) if out.is_file() else {"students": {}}
    record.setdefault("students", {})[name] = entry
    atomic_write_json(out, record)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--teacher-outputs", required=True)
    parser.add_argument("--students", nargs="+", default=["gru4rec", "caser"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--work", default=str(ROOT / "runs" / "distill_three_students"))
    parser.add_argument("--note", default="")
    args = parser.parse_args()

    from recdistill.recipes.distill import train_distill

    out = RESULTS / "distill_three_students.json"
    record = json.loads(out.read_text()) if out.is_file() else {"students": {}}
    for name in args.students:
        base = alone(name)
        entry = record["students"].setdefault(name, {"seeds": {}})
        for seed in args.seeds:
            if str(seed) in entry["seeds"]:
                continue
            start = time.perf_counter()
            result = train_distill(compose("distill", [
                f"student={name}", f"efficiency.seed={seed}", f"distill.teacher_outputs={args.teacher_outputs}",
                "distill.ed.gamma=0", "distill.kd.weight=0.8", f"paths.runs_dir={args.work}", "run.progress_bar=false",
                f"run.name=distill-{name}-seed{seed}"]))
            entry["seeds"][str(seed)] = {
                "alone_val": base[seed]["val/ndcg@10"], "alone_test": base[seed]["test/ndcg@10"],
                "distilled_val": result.metrics["val/ndcg@10"], "distilled_test": result.metrics["test/ndcg@10"],
                "best_epoch": result.metrics.get("best_epoch"), "seconds": round(time.perf_counter() - start, 1)}
            save_student(out, name, entry)
        seeds = entry["seeds"]
        if len(seeds) > 1:
            for split in ("val", "test"):
                entry[f"paired_{split}"] = paired_interval({s: r[f"alone_{split}"] for s, r in seeds.items()},
                                                           {s: r[f"distilled_{split}"] for s, r in seeds.items()})
        save_student(out, name, entry)
    record = json.loads(out.read_text())   # with the other students another process may have written
    record.update({"measured_at": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(), "note": args.note,
                   "teacher_outputs": args.teacher_outputs, "users": 943})
    atomic_write_json(out, record)
    lines = ["# Distillation into each of DLLM2Rec's three students", "",
             f"Measured {record['measured_at']} on {record['machine']['cpu']} ({record['machine']['cores']} cores, load "
             f"{record['machine']['load_average_at_end']}; {args.note or 'nothing else noted'}), ML-100K (943 users), full "
             "catalogue. Teacher outputs: the gate's SASRec teacher (hidden 128), last 40 positions, top-20; "
             "`kd.weight=0.8`, `ed.gamma=0`; students alone from `student_quality_<name>.json` (same defaults, seeds).", "",
             "| student | seed | alone val | distilled val | alone test | distilled test |", "|---|---|---|---|---|---|"]
    for name, entry in record["students"].items():
        for seed, r in sorted(entry["seeds"].items()):
            lines.append(f"| {name} | {seed} | {r['alone_val']:.4f} | {r['distilled_val']:.4f} | {r['alone_test']:.4f} | "
                         f"{r['distilled_test']:.4f} |")
    lines.append("")
    for name, entry in record["students"].items():
        if "paired_val" in entry:
            v, t = entry["paired_val"], entry["paired_test"]
            lines.append(f"- {name}, distilled minus alone over seeds: val {interval_text(v)}, test {interval_text(t)}")
    atomic_write_text(RESULTS / "distill_three_students.md", "\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
