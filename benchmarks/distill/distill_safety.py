"""Does distillation ever make the student worse? The pipeline of a profile over seeds, the student alone and
the pipeline's distilled student (weights chosen on validation, the student alone an arm) per seed, and the
paired difference over seeds with its 95 % interval; also what the weight search cost.

    python benchmarks/distill/distill_safety.py --profile demo --seeds 0 1 2 [--work runs/distill_safety]

With ``--no-pipeline --distill-run SEED=RUN ...`` it reads a finished pipeline and, for the seeds named, a
distillation run made outside it with the distill stage's own overrides (how the cpu profile's seeds 1 and 2
were finished after the stage crashed on seed 0, see its results entry).

Runs ``recdistill pipeline --profile <profile> --seeds ...`` (resumable: a rerun skips what is done), reads
its manifest, and merges one entry per profile into ``benchmarks/results/distill_safety.json`` (``paired`` ->
profile -> ``val`` / ``test`` -> ``mean``, ``ci95_low``, ``ci95_high``) and rewrites
``benchmarks/results/distill_safety.md``.

Cost: every trained arm's fit time (the sum of its ``epoch_*`` and ``validation_*`` stages) against one full
distillation run's (the mean of the arms that were not stopped early), so "x one run" counts what the search
trains on top of the student run the pipeline makes anyway.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))
from benchmarks.common.machine import describe as machine  # noqa: E402
from recdistill.engine import atomic_write_json, atomic_write_text  # noqa: E402
from recdistill.report.aggregate import interval_text, paired_interval  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
SPLITS = ("val", "test")


def fit_seconds(run: Path) -> float:
    stages = json.loads((run / "stages.json").read_text())
    return sum(s["seconds"] for s in stages if s["stage"].startswith(("epoch_", "validation_")))


def seed_row(folder: Path, manifest: dict, seed: int, distill_runs: dict[int, Path]) -> dict:
    student = folder / manifest["stages"][f"student@seed{seed}"]["outputs"]["run"]
    distill = distill_runs.get(seed) or folder / manifest["stages"][f"distill@seed{seed}"]["outputs"]["run"]
    alone, distilled = (json.loads((p / "metrics.json").read_text()) for p in (student, distill))
    selection_file = distill / "weight_selection.json"
    selection = json.loads(selection_file.read_text()) if selection_file.is_file() else {}
    arms = []
    for arm in selection.get("curve", []):
        if arm.get("arm") == "student alone":
            continue
        run = Path(arm["run"])
        arms.append({"weight": arm["weight"], "gamma": arm.get("gamma", 0.0), "val_ndcg@10": arm["val_ndcg@10"],
                     "epochs": arm.get("epochs"), "stopped": arm.get("stopped_behind_at_epoch") is not None,
                     "fit_seconds": round(fit_seconds(run), 1)})
    full = [a["fit_seconds"] for a in arms if not a["stopped"]]
    one_run = sum(full) / len(full) if full else None
    return {"seed": seed, "student_run": str(student), "distill_run": str(distill),
            **{f"student_{s}/ndcg@10": alone[f"{s}/ndcg@10"] for s in SPLITS},
            **{f"distilled_{s}/ndcg@10": distilled[f"{s}/ndcg@10"] for s in SPLITS},
            "chosen_arm": selection.get("chosen_arm"), "chosen_kd_weight": selection.get("chosen_weight"),
            "chosen_ed_gamma": selection.get("chosen_gamma"), "arms": arms,
            "search_fit_seconds": round(sum(a["fit_seconds"] for a in arms), 1),
            "one_run_fit_seconds": None if one_run is None else round(one_run, 1),
            "search_x_one_run": None if not one_run else round(sum(a["fit_seconds"] for a in arms) / one_run, 2)}


def paired(rows: list[dict]) -> dict:
    out = {}
    for split in SPLITS:
        out[split] = {**paired_interval({r["seed"]: r[f"student_{split}/ndcg@10"] for r in rows},
                                        {r["seed"]: r[f"distilled_{split}/ndcg@10"] for r in rows}), "n": len(rows)}
    return out


def markdown(record: dict) -> str:
    lines = ["# Distillation that never makes the student worse (issue 23)", "",
             "Written by `benchmarks/distill/distill_safety.py`. Per profile and seed: the student alone and the "
             "pipeline's distilled student (weights chosen on validation from grids holding 0, the student alone "
             "an arm), NDCG@10 on the full catalogue; the paired difference over seeds (distilled minus alone) with "
             "its 95 % t interval. Cost: the weight search's training time against one full distillation run.", ""]
    for name, entry in record["profiles"].items():
        m = entry["machine"]
        lines += [f"## Profile `{name}`", "",
                  f"Measured {entry['measured_at']} on {m.get('cpu')} ({m.get('cores')} cores, load average at the end "
                  f"{m.get('load_average_at_end')}; {entry.get('note') or 'nothing else noted'}), "
                  f"{entry['users']} users, seeds {', '.join(str(r['seed']) for r in entry['seeds'])}.", "",
                  "| seed | student val | distilled val | student test | distilled test | chosen | search cost |",
                  "|---|---|---|---|---|---|---|"]
        for r in entry["seeds"]:
            chosen = ("student alone" if r["chosen_arm"] == "student alone"
                      else f"kd {r['chosen_kd_weight']:g}, ed {r['chosen_ed_gamma']:g}")
            cost = "–" if r["search_x_one_run"] is None else f"{r['search_x_one_run']:.2f}x one run"
            lines.append(f"| {r['seed']} | {r['student_val/ndcg@10']:.4f} | {r['distilled_val/ndcg@10']:.4f} | "
                         f"{r['student_test/ndcg@10']:.4f} | {r['distilled_test/ndcg@10']:.4f} | {chosen} | {cost} |")
        p = record["paired"][name]
        lines += ["", f"Paired difference, distilled minus alone: val {interval_text(p['val'])}, "
                      f"test {interval_text(p['test'])} (n = {p['val']['n']}).", ""]
    for name, why in record.get("not_measured", {}).items():
        lines += [f"## Profile `{name}`: not measured", "", why, ""]
    return "\n".join(lines) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", default="demo")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--work", default=str(ROOT / "runs" / "distill_safety"))
    parser.add_argument("--note", default="", help="what else ran on the machine")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--distill-run", action="append", default=[], metavar="SEED=RUN",
                        help="a seed's distillation run made outside the pipeline (same overrides as its "
                             "distill stage), read instead of the manifest's entry; with --no-pipeline")
    parser.add_argument("--no-pipeline", action="store_true", help="read the finished pipeline, do not run it")
    args = parser.parse_args()
    distill_runs = {int(k): Path(v) for k, v in (item.split("=", 1) for item in args.distill_run)}

    work = Path(args.work).resolve() / args.profile
    work.mkdir(parents=True, exist_ok=True)
    started = time.time()
    cmd = [sys.executable, "-m", "recdistill", "pipeline", "--profile", args.profile, "--seeds",
           ",".join(map(str, args.seeds)), f"paths.runs_dir={work / 'runs'}", f"paths.data_dir={work / 'data'}"]
    print(" ".join(cmd), flush=True)
    if not args.no_pipeline:
        subprocess.run(cmd, check=True, cwd=work, env=dict(os.environ))
    folder = next(p.parent for p in (work / "runs").glob("pipeline-*/manifest.json"))
    manifest = json.loads((folder / "manifest.json").read_text())
    rows = [seed_row(folder, manifest, seed, distill_runs) for seed in args.seeds]
    users = json.loads((Path(manifest["stages"]["prepare"]["outputs"]["data"]) / "stats.json").read_text())["users"]

    out = Path(args.out)
    result_file = out / "distill_safety.json"
    record = json.loads(result_file.read_text()) if result_file.is_file() else {"profiles": {}, "paired": {}}
    record["profiles"][args.profile] = {"measured_at": time.strftime("%Y-%m-%d %H:%M"), "machine": machine(),
                                        "note": args.note, "users": users, "pipeline": str(folder),
                                        "wall_seconds": round(time.time() - started, 1), "seeds": rows,
                                        "distill_runs_outside_the_pipeline": {str(k): str(v) for k, v in distill_runs.items()}}
    record["paired"][args.profile] = paired(rows)
    record.get("not_measured", {}).pop(args.profile, None)
    atomic_write_json(result_file, record)
    atomic_write_text(out / "distill_safety.md", markdown(record))
    print(markdown(record))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
