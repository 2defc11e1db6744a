"""Gate (c) of issue 12 and the frozen LLM's own knowledge, as distillation arms against the student alone,
on validation over seeds 0-2 (test reported beside it, never used for a choice).

Arms (each distils the default small student with ``recdistill train distill``; every finished run is
saved under ``--state`` so a killed run resumes where it was):

* ``teacher``: the export of the CPU teacher trained by ``teacher_learning_curve.py`` (``--adapter``):
  its top-``--top-k`` over the student's top-20 at the last ``--last-n`` training positions of each user,
  ranking distillation and embedding distillation at DLLM2Rec's defaults;
* ``teacher-rd``: the same export with ranking distillation only (``distill.ed.gamma=0``), the setting the
  SASRec-teacher gate chose on validation (``distill_sasrec_teacher.md``);
* ``teacher-rd-all``: as ``teacher-rd`` with the ranking loss averaged over every position
  (``distill.kd.average_over=all_positions``), so the exported rows weigh as ordinary positions;
* ``titles``: the frozen LLM's own item embeddings (mean last hidden state over each title, no
  fine-tuning: an untrained adapter, whose LoRA updates are zero) as the embedding-distillation source,
  ranking distillation off (``distill.kd.weight=0``);
* ``alone``: the student alone with the same budget (``--epochs``/``--patience``). At the defaults
  (200 / 10) the records of ``distill_sasrec_teacher_runs/student-e200-p10-seed*.json`` are reused.

    python benchmarks/distill/distill_llm_teacher.py --adapter runs/teacher_learning_curve/adapter \\
        --student-checkpoint <the curve's student .ckpt> [--arms teacher titles alone] [--epochs 200 --patience 10]

Writes ``<out>/distill_llm_teacher.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository root
sys.path.insert(0, str(ROOT))  # so that `benchmarks.*` imports work from any folder
RESULTS = ROOT / "benchmarks" / "results"
KEYS = ("val/ndcg@10", "test/ndcg@10", "val/hr@10", "test/hr@10")
SASREC_GATE_RUNS = RESULTS / "distill_sasrec_teacher_runs"
# Arms that distil from the trained teacher's export: (label in the report, distillation overrides).
TEACHER_ARMS = {
    "teacher": ("distilled from the CPU teacher", []),
    "teacher-rd": ("distilled from the CPU teacher, ranking distillation only", ["distill.ed.gamma=0"]),
    "teacher-rd-all": ("distilled from the CPU teacher, ranking distillation only, averaged over all positions",
                       ["distill.ed.gamma=0", "distill.kd.average_over=all_positions"]),
}


def _save(state: Path, name: str, record: dict) -> dict:
    from recdistill.engine import atomic_write_json

    atomic_write_json(state / f"{name}.json", record)
    return record


def _saved(state: Path, name: str) -> dict | None:
    f = state / f"{name}.json"
    return json.loads(f.read_text()) if f.is_file() else None


def untrained_adapter(args, folder: Path) -> Path:
    """The teacher before any step: LoRA B is zero, so the LLM is the frozen base model."""
    if (folder / "adapter.json").is_file():
        return folder
    from benchmarks.teacher.curve_train import CurveRun, CurveSettings
    from benchmarks.teacher.teacher_common import cache_dir
    from benchmarks.teacher.teacher_learning_curve import _save_adapter

    s = CurveSettings(student_checkpoint=str(Path(args.student_checkpoint).resolve()), val_users=1, seed=0)
    _save_adapter(CurveRun(s, cache_dir()), folder, s)
    return folder


def export(args, name: str, adapter: Path, limit: int | None) -> dict:
    from recdistill.config import compose
    from recdistill.recipes.export import run_export

    if (done := _saved(args.state, f"export-{name}")) is not None:
        return done
    out = Path(args.work) / "exports" / name
    overrides = [f"paths.runs_dir={args.work}/runs", "teacher=ilora", f"teacher.adapter={adapter}",
                 "export.positions=last", f"export.last_n={args.last_n}", "export.candidates=student_top_m",
                 "export.num_candidates=20", f"export.top_k={args.top_k}", f"export.student_checkpoint={args.student_checkpoint}",
                 f"export.out_dir={out}", "export.progress_bar=false", "teacher.device=cpu"]
    if limit is not None:
        overrides.append(f"export.limit={limit}")
    start = time.perf_counter()
    result = run_export(compose("export", overrides))
    return _save(args.state, f"export-{name}", {"path": str(out), "rows": sum(s["rows"] for s in result.manifest["shards"]),
                                                "seconds": round(time.perf_counter() - start, 1), "overrides": overrides})


def distill(args, arm: str, seed: int, export_path: str, extra: list[str]) -> dict:
    from recdistill.config import compose
    from recdistill.recipes.distill import train_distill

    name = f"{arm}-e{args.epochs}-p{args.patience}-seed{seed}"
    if (done := _saved(args.state, name)) is not None:
        return done
    start = time.perf_counter()
    result = train_distill(compose("distill", [
        f"paths.runs_dir={args.work}/runs", "run.progress_bar=false", f"train.max_epochs={args.epochs}",
        f"train.early_stopping_patience={args.patience}", f"efficiency.seed={seed}", f"run.name={arm}-seed{seed}",
        f"distill.teacher_outputs={export_path}", *extra]))
    return _save(args.state, name, {"seed": seed, "metrics": result.metrics, "run_dir": str(result.run_dir),
                                    "seconds": round(time.perf_counter() - start, 1), "overrides": extra})


def alone(args, seed: int) -> dict:
    name = f"alone-e{args.epochs}-p{args.patience}-seed{seed}"
    if (done := _saved(args.state, name)) is not None:
        return done
    recorded = SASREC_GATE_RUNS / f"student-e{args.epochs}-p{args.patience}-seed{seed}.json"
    if recorded.is_file():
        rec = json.loads(recorded.read_text())
        return _save(args.state, name, {"seed": seed, "metrics": rec["metrics"], "source": str(recorded.relative_to(ROOT))})
    from recdistill.config import compose
    from recdistill.recipes.student import train_student

    start = time.perf_counter()
    result = train_student(compose("student", [f"paths.runs_dir={args.work}/runs", "run.progress_bar=false",
                                               f"train.max_epochs={args.epochs}", f"train.early_stopping_patience={args.patience}",
                                               f"efficiency.seed={seed}", f"run.name=alone-seed{seed}"]))
    return _save(args.state, name, {"seed": seed, "metrics": result.metrics, "run_dir": str(result.run_dir),
                                    "seconds": round(time.perf_counter() - start, 1)})


def report(args, results: dict) -> None:
    from recdistill.report.aggregate import summarize

    out = {"settings": {k: str(v) for k, v in vars(args).items()}, "arms": {}}
    lines = ["# Distilling from the CPU LLM teacher (gate c) and from the frozen LLM's title embeddings", "",
             f"Default small student, {args.epochs} epochs max, early stopping patience {args.patience}, seeds "
             f"{args.seeds}; full-catalogue NDCG@10 / HR@10 (the students' protocol). Machine: 2-core CPU VM, no GPU"
             f"{'; ' + args.note if args.note else ''}.", "",
             "| arm | seeds | val NDCG@10 mean ± sd | test NDCG@10 mean ± sd | per-seed val | per-seed test |",
             "|---|---|---|---|---|---|"]
    for arm, records in results.items():
        if not records:
            continue
        summaries = {k: summarize([r["metrics"][k] for r in records]) for k in KEYS}
        stats = {k: (v.mean, v.sd or 0.0) for k, v in summaries.items()}
        out["arms"][arm] = {"seeds": [r["seed"] for r in records], "mean_sd": stats,
                            "per_seed": {r["seed"]: {k: r["metrics"][k] for k in KEYS} for r in records}}
        per = lambda k: ", ".join(f"{r['metrics'][k]:.4f}" for r in records)  # noqa: E731
        lines.append(f"| {arm} | {[r['seed'] for r in records]} | {stats['val/ndcg@10'][0]:.4f} ± {stats['val/ndcg@10'][1]:.4f} "
                     f"| {stats['test/ndcg@10'][0]:.4f} ± {stats['test/ndcg@10'][1]:.4f} | {per('val/ndcg@10')} | {per('test/ndcg@10')} |")
    lines += _paired(results, out)
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "distill_llm_teacher.json").write_text(json.dumps(out, indent=2) + "\n")
    (Path(args.out) / "distill_llm_teacher.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


def _paired(results: dict, out: dict) -> list[str]:
    """Each arm minus the student alone, paired on seeds (``recdistill.report.aggregate``), val and test."""
    from recdistill.report.aggregate import compare_paired

    alone = results.get("student alone") or []
    lines = ["", "Paired on seeds, arm minus student alone (95 % t interval of the per-seed differences, paired "
             "t-test, exact sign-flip test):", ""]
    for arm, records in results.items():
        if arm == "student alone" or not records or not alone:
            continue
        coverage = records[0]["metrics"].get("teacher_coverage")
        for key in ("val/ndcg@10", "test/ndcg@10"):
            c = compare_paired({r["seed"]: r["metrics"][key] for r in alone}, {r["seed"]: r["metrics"][key] for r in records})
            out["arms"][arm].setdefault("paired_vs_alone", {})[key] = {
                "differences": list(c.differences), "mean": c.difference.mean,
                "ci95": [c.difference.low, c.difference.high], "t_test_p": c.t_test_p, "sign_flip_p": c.sign_flip_p}
            lines.append(f"- {arm}, {key}: {c.text()}")
        if coverage is not None:
            lines.append(f"- {arm}: the teacher's rankings cover {100 * coverage:.1f} % of the training targets")
    return lines


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--adapter", default=None, help="the trained teacher's adapter folder (the teacher* arms)")
    p.add_argument("--student-checkpoint", required=True, help="the student whose top-20 the teacher reranks")
    p.add_argument("--arms", nargs="+", default=["alone", "teacher", "titles"], choices=("alone", *TEACHER_ARMS, "titles"))
    p.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--patience", type=int, default=10)
    p.add_argument("--last-n", type=int, default=1, help="exported training positions per user")
    p.add_argument("--top-k", type=int, default=10)
    p.add_argument("--work", default="runs/distill_llm_teacher")
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument("--note", default="", help="a line for the results (e.g. what else ran on the machine)")
    args = p.parse_args(argv)
    args.state = Path(args.work) / "state"
    args.state.mkdir(parents=True, exist_ok=True)
    results = {}
    if "alone" in args.arms:
        results["student alone"] = [alone(args, s) for s in args.seeds]
    for arm, (label, overrides) in TEACHER_ARMS.items():
        if arm not in args.arms:
            continue
        if not args.adapter:
            raise SystemExit(f"error: arm '{arm}' needs --adapter (the curve's <work>/adapter)")
        e = export(args, "teacher", Path(args.adapter), None)
        results[label] = [distill(args, arm, s, e["path"], overrides) for s in args.seeds]
    if "titles" in args.arms:
        e = export(args, "titles", untrained_adapter(args, Path(args.work) / "untrained_adapter"), 1)
        results["title embeddings of the frozen LLM (ED only)"] = [
            distill(args, "titles", s, e["path"], ["distill.kd.weight=0"]) for s in args.seeds]
    report(args, results)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
