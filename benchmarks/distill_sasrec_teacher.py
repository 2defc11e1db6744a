"""The gate of distillation, independent of the LLM: a stronger SASRec teacher (larger, trained longer)
is exported with ``teacher=student`` and distilled into the default small student; the distilled
student is compared with the same student trained alone, on val and test NDCG@10, over several seeds.

Every step is the real command code (``train_student``, the export writer with the SASRec ranker,
``train_distill``). Results are written per run (so an interrupted experiment resumes where it stopped)
and summarised in ``benchmarks/results/distill_sasrec_teacher.{json,md}``.

    python benchmarks/distill_sasrec_teacher.py                       # everything, in order
    python benchmarks/distill_sasrec_teacher.py --part baseline       # only the students alone
    python benchmarks/distill_sasrec_teacher.py --part teacher        # teacher, export, distilled students
    python benchmarks/distill_sasrec_teacher.py --part summary        # tables from what is there

The two parts are independent, so they can run side by side in two processes.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from omegaconf import OmegaConf

import recdistill.config
from recdistill.config import compose
from recdistill.engine import atomic_write_json, atomic_write_text

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
STATE = RESULTS / "distill_sasrec_teacher_runs"


def common(args) -> list[str]:
    return [f"paths.runs_dir={args.work}/runs", f"paths.data_dir={args.work}/data", "run.progress_bar=false",
            f"train.early_stopping_patience={args.patience}"]


def student_overrides(args, seed: int) -> list[str]:
    """The default small student; only the epoch budget and the seed are set."""
    return [*common(args), f"train.max_epochs={args.epochs}", f"efficiency.seed={seed}"]


def teacher_overrides(args) -> list[str]:
    return [*common(args), f"student.hidden_size={args.teacher_hidden}", f"student.num_blocks={args.teacher_blocks}",
            f"train.max_epochs={args.teacher_epochs}", "efficiency.seed=0", "run.name=sasrec-teacher"]


def saved(name: str) -> dict | None:
    file = STATE / f"{name}.json"
    return json.loads(file.read_text()) if file.is_file() else None


def save(name: str, record: dict) -> dict:
    atomic_write_json(STATE / f"{name}.json", record)
    return record


def run_student(args, seed: int) -> dict:
    from recdistill.student.commands import train_student

    name = f"student-seed{seed}"
    if (done := saved(name)) is not None:
        return done
    start = time.perf_counter()
    result = train_student(compose("student", [*student_overrides(args, seed), f"run.name={name}"]))
    return save(name, {"seed": seed, "metrics": result["metrics"], "run_dir": result["run_dir"],
                       "seconds": round(time.perf_counter() - start, 1), "stages": result["stages"]})


def run_teacher(args) -> dict:
    from recdistill.student.commands import train_student

    if (done := saved("teacher")) is not None:
        return done
    start = time.perf_counter()
    result = train_student(compose("student", teacher_overrides(args)))
    return save("teacher", {"metrics": result["metrics"], "checkpoint": result["best_checkpoint"],
                            "run_dir": result["run_dir"], "seconds": round(time.perf_counter() - start, 1)})


def run_export(args, teacher: dict) -> dict:
    from recdistill.data.prepared import load_prepared
    from recdistill.data.prepare import ensure_prepared
    from recdistill.export.from_config import export_with_config, student_ranker

    if (done := saved("export")) is not None:
        return done
    data = load_prepared(ensure_prepared(compose("student", common(args))))
    teacher_cfg = {"kind": "student", "checkpoint": teacher["checkpoint"], "exclude_seen": True, "device": "auto"}
    export = OmegaConf.load(Path(recdistill.config.__file__).parent / "conf" / "export" / "default.yaml")
    export.candidates = "all"
    export.positions = args.positions
    export.last_n = args.last_n
    export.top_k = args.top_k
    export.batch_size = 512
    export.progress_bar = False
    ranker = student_ranker(OmegaConf.create(teacher_cfg), export, data)
    out = Path(args.work) / "teacher_outputs" / "sasrec-teacher"
    start = time.perf_counter()
    manifest = export_with_config(export, ranker, data, out)
    return save("export", {"path": str(out), "rows": manifest["positions"]["rows"], "top_k": manifest["top_k"],
                           "seconds": round(time.perf_counter() - start, 1)})


def run_distilled(args, seed: int, export: dict) -> dict:
    from recdistill.distill.commands import train_distill

    name = f"distill-seed{seed}"
    if (done := saved(name)) is not None:
        return done
    start = time.perf_counter()
    overrides = [*student_overrides(args, seed), f"run.name={name}", f"distill.teacher_outputs={export['path']}",
                 *args.distill_overrides]
    result = train_distill(compose("distill", overrides))
    return save(name, {"seed": seed, "metrics": result["metrics"], "run_dir": result["run_dir"],
                       "seconds": round(time.perf_counter() - start, 1), "stages": result["stages"],
                       "overrides": args.distill_overrides})


def mean_sd(values: list[float]) -> tuple[float, float]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def summary(args) -> dict:
    teacher, export = saved("teacher"), saved("export")
    rows = {"student alone": [saved(f"student-seed{s}") for s in args.seeds],
            "distilled": [saved(f"distill-seed{s}") for s in args.seeds]}
    out = {"settings": {k: v for k, v in vars(args).items() if k not in ("part",)}, "teacher": teacher,
           "export": export, "models": {}}
    lines = ["| model | seeds | val NDCG@10 (mean ± sd) | test NDCG@10 (mean ± sd) | val HR@10 | test HR@10 | per-seed test NDCG@10 |",
             "|---|---|---|---|---|---|---|"]
    if teacher:
        m = teacher["metrics"]
        lines.append(f"| teacher (SASRec h={args.teacher_hidden}, {args.teacher_blocks} blocks, ≤{args.teacher_epochs} epochs) "
                     f"| 1 | {m['val/ndcg@10']:.4f} | {m['test/ndcg@10']:.4f} | {m['val/hr@10']:.4f} | {m['test/hr@10']:.4f} | |")
    for label, records in rows.items():
        records = [r for r in records if r]
        if not records:
            continue
        stats = {}
        for key in ("val/ndcg@10", "test/ndcg@10", "val/hr@10", "test/hr@10"):
            stats[key] = mean_sd([r["metrics"][key] for r in records])
        out["models"][label] = {"seeds": [r["seed"] for r in records], "mean_sd": stats,
                                "per_seed": {r["seed"]: {k: r["metrics"][k] for k in stats} for r in records},
                                "best_epochs": [r["metrics"].get("best_epoch") for r in records],
                                "seconds": [r["seconds"] for r in records]}
        per_seed = ", ".join(f"{r['metrics']['test/ndcg@10']:.4f}" for r in records)
        lines.append(f"| {label} | {len(records)} | {stats['val/ndcg@10'][0]:.4f} ± {stats['val/ndcg@10'][1]:.4f} "
                     f"| {stats['test/ndcg@10'][0]:.4f} ± {stats['test/ndcg@10'][1]:.4f} | {stats['val/hr@10'][0]:.4f} "
                     f"| {stats['test/hr@10'][0]:.4f} | {per_seed} |")
    if len(out["models"]) == 2:
        a, b = out["models"]["student alone"]["mean_sd"], out["models"]["distilled"]["mean_sd"]
        out["verdict"] = {split: {"student": a[f"{split}/ndcg@10"][0], "distilled": b[f"{split}/ndcg@10"][0],
                                  "relative_change": b[f"{split}/ndcg@10"][0] / a[f"{split}/ndcg@10"][0] - 1,
                                  "distilled_better": b[f"{split}/ndcg@10"][0] > a[f"{split}/ndcg@10"][0]}
                          for split in ("val", "test")}
        lines.append("")
        for split, v in out["verdict"].items():
            lines.append(f"- {split} NDCG@10: distilled {v['distilled']:.4f} vs alone {v['student']:.4f} "
                         f"({v['relative_change']:+.1%})")
    out["environment"] = {"torch": torch.__version__, "threads": torch.get_num_threads(), "python": sys.version.split()[0]}
    atomic_write_json(RESULTS / "distill_sasrec_teacher.json", out)
    settings = (f"ML-100K, leave-one-out, full-catalogue ranking with seen items excluded. Student: default "
                f"`conf/student/sasrec.yaml` (h=64, 2 blocks), ≤{args.epochs} epochs, early stopping patience "
                f"{args.patience} on val NDCG@10, seeds {args.seeds}. Teacher: h={args.teacher_hidden}, "
                f"{args.teacher_blocks} blocks, ≤{args.teacher_epochs} epochs, exported at "
                f"{'every training position' if args.positions == 'all' else f'the last {args.last_n} training positions of each user'}"
                f" (top-{args.top_k} of the whole catalogue, seen items excluded; {(export or {}).get('rows', '?')} rows). Distillation: `conf/distill/dllm2rec.yaml` "
                f"defaults{' + ' + ' '.join(args.distill_overrides) if args.distill_overrides else ''}.")
    atomic_write_text(RESULTS / "distill_sasrec_teacher.md",
                      "# Distillation from a stronger SASRec teacher\n\n" + settings + "\n\n" + "\n".join(lines) + "\n")
    print("\n".join(lines))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--part", choices=["all", "baseline", "teacher", "summary"], default="all")
    p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    p.add_argument("--epochs", type=int, default=20, help="max epochs of the student and the distilled student")
    p.add_argument("--patience", type=int, default=5)
    p.add_argument("--teacher-epochs", type=int, default=30)
    p.add_argument("--teacher-hidden", type=int, default=128)
    p.add_argument("--teacher-blocks", type=int, default=2)
    p.add_argument("--top-k", type=int, default=20)
    p.add_argument("--positions", default="last", help="export.positions: all | last")
    p.add_argument("--last-n", type=int, default=40, help="export.last_n for --positions last")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--work", default=str(ROOT / "runs" / "distill_sasrec_teacher"), help="runs, data, exports")
    p.add_argument("--distill-overrides", nargs="*", default=[], help="extra distill.* overrides")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    STATE.mkdir(parents=True, exist_ok=True)
    if args.part in ("all", "baseline"):
        for seed in args.seeds:
            run_student(args, seed)
    if args.part in ("all", "teacher"):
        export = run_export(args, run_teacher(args))
        for seed in args.seeds:
            run_distilled(args, seed, export)
    summary(args)


if __name__ == "__main__":
    main()
