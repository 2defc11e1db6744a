"""Quality of the SASRec student on ML-100K with the default settings, over several seeds.

Each seed is one `recdistill train student` run (selected on val NDCG@10, test evaluated once on the best
checkpoint; full catalogue, seen items excluded), run as its own process so seeds can run side by side.

    python benchmarks/student/student_quality.py --seeds 0 1 2 [--parallel 3] [key=value ...]

Writes ``<out>/<result-name>.json`` (default ``student_quality``) (every run's metrics; mean, sample sd and t-based 95 % interval from
``recdistill.report.aggregate``) and appends a line of markdown to
``<out>/<result-name>.md``. Targets (issue 2): test NDCG@10 >= 0.095 and HR@10 >= 0.18.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from recdistill.report.aggregate import summarize

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from benchmarks.common.machine import describe as machine  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]  # the repository root
RESULTS = ROOT / "benchmarks" / "results"
KEYS = ("test/ndcg@10", "test/hr@10", "test/ndcg@20", "test/hr@20", "test/mrr@10", "val/ndcg@10", "val/hr@10",
        "test/sampled100_ndcg@10", "test/sampled100_hr@10", "best_epoch", "epochs_trained")
TARGETS = {"test/ndcg@10": 0.095, "test/hr@10": 0.18}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--parallel", type=int, default=1, help="runs at a time (one process each)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads per run")
    parser.add_argument("--runs-dir", default="bench_runs/student_quality")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--result-name", default="student_quality",
                        help="stem of the result files, e.g. student_quality_gru4rec for student=gru4rec")
    parser.add_argument("overrides", nargs="*", help="extra config overrides for every run")
    args = parser.parse_args()

    runs_dir = Path(args.runs_dir).resolve()
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads))
    pending = list(args.seeds)
    running: list[tuple[int, subprocess.Popen, float]] = []
    results = []
    while pending or running:
        while pending and len(running) < args.parallel:
            seed = pending.pop(0)
            cmd = [sys.executable, "-m", "recdistill", "train", "student", f"efficiency.seed={seed}",
                   f"paths.runs_dir={runs_dir}", f"run.name=quality-seed{seed}", "run.progress_bar=false",
                   *args.overrides]
            runs_dir.mkdir(parents=True, exist_ok=True)
            log = open(runs_dir.parent / f"quality-seed{seed}.log", "w")
            running.append((seed, subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT), time.time()))
            print(f"started seed {seed}: {' '.join(cmd)}", flush=True)
        time.sleep(5)
        for item in list(running):
            seed, proc, started = item
            if proc.poll() is None:
                continue
            running.remove(item)
            if proc.returncode != 0:
                print(f"seed {seed} failed (exit {proc.returncode}); see {runs_dir.parent / f'quality-seed{seed}.log'}")
                continue
            run = max(runs_dir.glob(f"*_quality-seed{seed}*"), key=lambda p: p.stat().st_mtime)
            metrics = json.loads((run / "metrics.json").read_text())
            row = {"seed": seed, "run": str(run), "wall_seconds": round(time.time() - started, 1),
                   **{k: metrics.get(k) for k in KEYS}}
            results.append(row)
            print(f"seed {seed}: test ndcg@10={row['test/ndcg@10']:.4f} hr@10={row['test/hr@10']:.4f} "
                  f"(best epoch {row['best_epoch']}, {row['wall_seconds']} s)", flush=True)
    if not results:
        return 1
    summary = {}
    for key in KEYS:
        values = [r[key] for r in results if r.get(key) is not None]
        if values:
            stat = summarize(values)  # the report's aggregation: sample sd, t-based 95 % interval
            summary[key] = {"mean": stat.mean, "sd": stat.sd, "ci95": [stat.low, stat.high],
                            "min": min(values), "max": max(values), "text": stat.text()}
    record = {"benchmark": args.result_name, "machine": machine(), "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "dataset": "ml-100k",
              "protocol": "full catalogue, seen items excluded; selected on val NDCG@10",
              "overrides": args.overrides, "seeds": args.seeds, "threads_per_run": args.threads,
              "parallel": args.parallel, "runs": results, "summary": summary, "targets": TARGETS,
              "meets_targets": all(summary[k]["mean"] >= v for k, v in TARGETS.items() if k in summary)}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.result_name}.json").write_text(json.dumps(record, indent=2) + "\n")
    s = summary
    line = (f"| {record['time']} | seeds {','.join(map(str, args.seeds))} | "
            f"test NDCG@10 {s['test/ndcg@10']['text']} | "
            f"test HR@10 {s['test/hr@10']['text']} | "
            f"sampled100 NDCG@10 {s.get('test/sampled100_ndcg@10', {}).get('mean', float('nan')):.4f} | "
            f"best epoch {s['best_epoch']['mean']:.0f} | {' '.join(args.overrides) or 'defaults'} |\n")
    with open(out / f"{args.result_name}.md", "a") as fh:
        fh.write(line)
    print(line, end="")
    return 0 if record["meets_targets"] else 1


if __name__ == "__main__":
    raise SystemExit(main())
