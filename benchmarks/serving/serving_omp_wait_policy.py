"""Two recdistill processes on a small machine (a service next to a training run, or two runs): one student
epoch on ml-100k alone and with a second one at the same time, with OpenMP's default wait policy (threads
spin while they wait for work, taking the cores the other process needs) and with OMP_WAIT_POLICY=PASSIVE
(they sleep), which ``recdistill`` now sets unless the user chose a policy.

    python benchmarks/serving/serving_omp_wait_policy.py --prepared data/ml-100k

The runs call the training recipe directly (not ``recdistill.cli.main``, which would set PASSIVE), so
"default" really is the library's default. The epoch time is the ``epoch_0`` record of each run's
``stages.json``. Measure only on a quiet machine: other jobs change both columns.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TRAIN = ("from recdistill.config import compose; from recdistill.recipes.student import train_student; "
         "import sys; train_student(compose('student', sys.argv[1:]))")


def start_run(prepared: str, runs_dir: Path, name: str, policy: str | None) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if policy:
        env["OMP_WAIT_POLICY"] = policy
    overrides = [f"prepared={prepared}", f"paths.runs_dir={runs_dir}", f"run.name={name}", "train.max_epochs=1",
                 "run.progress_bar=false"]
    return subprocess.Popen([sys.executable, "-c", TRAIN, *overrides], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)


def epoch_seconds(runs_dir: Path, name: str) -> float:
    (stages,) = runs_dir.glob(f"*_{name}/stages.json")
    return next(s["seconds"] for s in json.loads(stages.read_text()) if s["stage"] == "epoch_0")


def measure(prepared: str, policy: str | None, together: int, work: Path) -> list[float]:
    runs_dir = work / f"{policy or 'default'}-{together}-{time.time_ns()}"
    names = [f"run{i}" for i in range(together)]
    procs = [start_run(prepared, runs_dir, n, policy) for n in names]
    for proc in procs:
        _, err = proc.communicate()
        if proc.returncode:
            raise RuntimeError(err[-2000:])
    return [epoch_seconds(runs_dir, n) for n in names]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--prepared", required=True)
    p.add_argument("--out", default=str(Path(__file__).resolve().parents[1] / "results"))
    p.add_argument("--note", default="", help="what else ran on the machine meanwhile")
    args = p.parse_args()
    load_before = [round(x, 2) for x in os.getloadavg()]
    rows = {}
    with tempfile.TemporaryDirectory() as work:
        for policy in (None, "PASSIVE"):
            for together in (1, 2):
                rows[f"{policy or 'default (spin)'}, {together} at once"] = measure(args.prepared, policy, together,
                                                                                   Path(work))
                print(rows, flush=True)
    result = {"cores": len(os.sched_getaffinity(0)), "load_before": load_before, "note": args.note,
              "load_after": [round(x, 2) for x in os.getloadavg()], "epoch_seconds": rows}
    out = Path(args.out)
    (out / "serving_omp_wait_policy.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = ["# Two recdistill processes on a small machine: OpenMP's wait policy", "",
             f"{result['cores']} cores; load average before / after: {load_before} / {result['load_after']}. "
             "One student epoch on ml-100k (`epoch_0` of stages.json), seconds per run. " + args.note, "",
             "| OMP_WAIT_POLICY | runs at once | epoch seconds |", "|---|---|---|"]
    lines += [f"| {k.split(',')[0]} | {k.split(', ')[1].split()[0]} | {', '.join(f'{s:.2f}' for s in v)} |"
              for k, v in rows.items()]
    (out / "serving_omp_wait_policy.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
