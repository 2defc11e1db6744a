"""DLLM2Rec's published forms against ours, one at a time, with the gate's SASRec teacher (issue 24).

Each arm is the distillation defaults with one option switched to the form DLLM2Rec's code has
(``docs/distillation.md``, "DLLM2Rec as published"), trained on the same seeds as the defaults and the
student alone; every arm is compared with the defaults (ours) paired by seed, on val and test NDCG@10 of the
full catalogue. The teacher is the gate's single SASRec (hidden 128, 2 blocks, 2 heads, dropout 0.2, seed 0,
trained to convergence) exported at each user's last 40 training positions (top-20), as
``distill/distill_sasrec_teacher.py`` trains and exports it; its functions do every step here.

Runs go seed by seed, every arm within a seed, so an interrupted run leaves paired arms; records are kept
under ``--state`` and the script resumes where it stopped.

    python benchmarks/distill/distill_published_forms.py                  # everything, resumable
    python benchmarks/distill/distill_published_forms.py --part summary   # tables from what is there

Left out: ``distill.base_loss_scale=published`` (it needs a BCE student, a different baseline),
``kd.confidence=exp_neg_distance`` and ``teacher.export.embedding_pooling=last`` (they need an LLM teacher's
grounded export). Writes ``benchmarks/results/distill_published_forms.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from benchmarks.common.machine import describe as machine  # noqa: E402
from benchmarks.distill import distill_sasrec_teacher as gate  # noqa: E402
from recdistill.engine import atomic_write_json, atomic_write_text  # noqa: E402
from recdistill.report.aggregate import interval_text, paired_interval  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
# label -> the distill overrides of the arm (one published form each; "ours" = the defaults)
ARMS = {
    "ours (defaults)": [],
    "negative term log σ(1 − s)": ["distill.kd.negative_term=published"],
    "negatives outside the input window (50 items here)": ["distill.kd.negatives_avoid=window"],
    "teacher embedding on the input only, untied output table": ["distill.ed.tie=untied"],
    "raw teacher embeddings (no standardising)": ["distill.ed.normalize=none"],
    "DROS, per-sample weights (ours)": ["distill.dros.enabled=true"],
    "DROS, their broadcast ranking form": ["distill.dros.enabled=true", "distill.dros.ranking_form=published"],
}


def gate_args(args, overrides: list[str]) -> argparse.Namespace:
    """The gate script's arguments for this experiment (its defaults: the single seed-0 teacher)."""
    return argparse.Namespace(
        seeds=args.seeds, epochs=args.epochs, patience=args.patience, teacher_epochs=200, teacher_patience=10,
        teacher_hidden=128, teacher_blocks=2, teacher_heads=2, teacher_dropout=0.2, teacher_seeds=[0],
        teacher_max_len=50, top_k=20, positions="last", last_n=40, threads=args.threads, work=args.work,
        state=args.state, distill_overrides=overrides, confirm_seeds=[])


def run(args) -> None:
    base = gate_args(args, [])
    export = gate.run_export(base, gate.run_teacher(base))
    print(f"teacher export: {export['path']} ({export['rows']} rows)", flush=True)
    for seed in args.seeds:
        gate.run_student(base, seed)
        for label, overrides in ARMS.items():
            start = time.perf_counter()
            record = gate.run_distilled(gate_args(args, overrides), seed, export)
            print(f"seed {seed} {label}: val {record['metrics']['val/ndcg@10']:.4f} test "
                  f"{record['metrics']['test/ndcg@10']:.4f} ({time.perf_counter() - start:.0f} s)", flush=True)


def summary(args) -> dict:
    base = gate_args(args, [])
    teacher = gate.saved(base, f"teacher-{gate.teacher_tag(base)}")
    alone = {s: r for s in args.seeds if (r := gate.saved(base, gate.student_name(base, s)))}
    arms = {label: {s: r for s in args.seeds if (r := gate.saved(gate_args(args, o), gate.distill_name(gate_args(args, o), s)))}
            for label, o in ARMS.items()}
    ours = arms["ours (defaults)"]
    out = {"benchmark": "distill_published_forms", "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "machine": machine(),
           "settings": {"seeds": args.seeds, "epochs": args.epochs, "patience": args.patience, "threads": args.threads,
                        "teacher": gate.teacher_tag(base), "export": gate.export_tag(base)},
           "note": args.note, "teacher": teacher and {k: teacher["metrics"][k] for k in gate.KEYS},
           "alone": {s: {k: r["metrics"][k] for k in gate.KEYS} for s, r in alone.items()}, "arms": {}}
    lines = ["| arm | overrides | seeds | val NDCG@10 | test NDCG@10 | val minus ours | test minus ours "
             "| val minus alone | minutes per run |", "|---|---|---|---|---|---|---|---|---|"]
    if alone:
        d = gate.describe(list(alone.values()))
        lines.append(f"| student alone | | {', '.join(map(str, d['seeds']))} | {d['mean_sd']['val/ndcg@10'][0]:.4f} "
                     f"| {d['mean_sd']['test/ndcg@10'][0]:.4f} | | | | {sum(d['seconds']) / 60 / len(d['seconds']):.1f} |")
    for label, records in arms.items():
        if not records:
            lines.append(f"| {label} | `{' '.join(ARMS[label])}` | not run | | | | | | |")
            continue
        d = gate.describe([records[s] for s in sorted(records)])
        entry = {"overrides": ARMS[label], **d}
        cells = []
        for split in ("val", "test"):
            key = f"{split}/ndcg@10"
            if label != "ours (defaults)" and set(records) & set(ours):
                paired = paired_interval({s: ours[s]["metrics"][key] for s in ours},
                                         {s: records[s]["metrics"][key] for s in records})
                entry[f"{split}_minus_ours"] = paired
                cells.append(interval_text(paired) if len(paired["differences"]) > 1 else f"{paired['mean']:+.4f} (one seed)")
            else:
                cells.append("")
        vs_alone = ""
        if set(records) & set(alone):
            paired = paired_interval({s: alone[s]["metrics"]["val/ndcg@10"] for s in alone},
                                     {s: records[s]["metrics"]["val/ndcg@10"] for s in records})
            entry["val_minus_alone"] = paired
            vs_alone = interval_text(paired) if len(paired["differences"]) > 1 else f"{paired['mean']:+.4f} (one seed)"
        out["arms"][label] = entry
        lines.append(f"| {label} | `{' '.join(ARMS[label]) or 'none'}` | {', '.join(map(str, d['seeds']))} "
                     f"| {d['mean_sd']['val/ndcg@10'][0]:.4f} | {d['mean_sd']['test/ndcg@10'][0]:.4f} | {cells[0]} "
                     f"| {cells[1]} | {vs_alone} | {sum(d['seconds']) / 60 / len(d['seconds']):.1f} |")
    dros = [arms["DROS, per-sample weights (ours)"], arms["DROS, their broadcast ranking form"]]
    if set(dros[0]) & set(dros[1]):   # the two DROS forms against each other, both with DROS on
        lines.append("")
        for split in ("val", "test"):
            key = f"{split}/ndcg@10"
            paired = paired_interval({s: r["metrics"][key] for s, r in dros[0].items()},
                                     {s: r["metrics"][key] for s, r in dros[1].items()})
            out[f"dros_published_minus_per_sample_{split}"] = paired
            lines.append(f"- DROS in the ranking term, their broadcast form minus ours (both with DROS on), {key}: "
                         + (interval_text(paired) if len(paired["differences"]) > 1 else f"{paired['mean']:+.4f} (one seed)"))
    t = out["teacher"]
    md = ["# DLLM2Rec's published forms against ours, one at a time", "",
          f"{out['time']}. ML-100K (943 users), leave-one-out, full-catalogue NDCG@10 with seen items excluded; every "
          f"model selected on val NDCG@10, test read once. Student: the default SASRec (h=64, 2 blocks), ≤{args.epochs} "
          f"epochs, patience {args.patience}, seeds {args.seeds}. Teacher: SASRec `{gate.teacher_tag(base)}`"
          + (f" (val {t['val/ndcg@10']:.4f}, test {t['test/ndcg@10']:.4f} NDCG@10)" if t else "")
          + f", exported at each user's last 40 training positions, top-20 (`{gate.export_tag(base)}`). Distillation: "
          "the defaults (kd.weight 0.8, ed.gamma 0.2, `conf/distill/dllm2rec.yaml`) with one option changed per arm. "
          "Differences: arm minus ours (or minus the student alone), mean over seeds with the 95 % t interval of the "
          f"per-seed differences. One thread per run. {args.note}", "", *lines, "",
          "Read: an interval that holds 0 means this many seeds cannot tell the two forms apart on this teacher.",
          "", f"Machine: `{json.dumps(out['machine'])}`.", ""]
    atomic_write_json(RESULTS / "distill_published_forms.json", out)
    atomic_write_text(RESULTS / "distill_published_forms.md", "\n".join(md))
    print("\n".join(md))
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--part", choices=["all", "summary"], default="all")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--patience", type=int, default=10)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--work", default=str(ROOT / "runs" / "distill_published_forms"), help="runs, data, exports")
    p.add_argument("--state", default=str(RESULTS / "distill_published_forms_runs"), help="per-run records")
    p.add_argument("--note", default="", help="a sentence for the results (what else ran on the machine)")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    Path(args.state).mkdir(parents=True, exist_ok=True)
    if args.part == "all":
        run(args)
    summary(args)


if __name__ == "__main__":
    main()
