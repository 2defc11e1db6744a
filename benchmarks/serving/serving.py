"""What distillation buys at serving time: the student's latency and throughput (torch against ONNX
Runtime, and through the HTTP service) against the LLM teacher's cost for the same recommendations.

    python benchmarks/serving/serving.py --student runs/<distill run>/checkpoints/<best>.ckpt \\
        --teacher-student runs/<student run>/checkpoints/<best>.ckpt [--teacher-adapter runs/<teacher>/adapter]

Writes ``benchmarks/results/serving.json`` and ``.md``. The teacher is SmolLM2-135M with the iLoRA
adapters scoring the 20 candidates of the teacher's protocol by likelihood with its KV cache reused
(``recdistill.teacher.scoring.score_candidates``, what ``eval teacher`` and ``export`` run). Without
``--teacher-adapter`` its adapters are untrained: the cost is the same, its quality is then only a floor.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]  # the repository root
sys.path.insert(0, str(ROOT))  # so that `benchmarks.*` imports work from any folder
RESULTS = ROOT / "benchmarks" / "results"


def timed(fn, repeats: int) -> tuple[list[float], float]:
    """Wall seconds of each call, and the process's CPU seconds over all of them (every thread counted).
    On a machine shared with other jobs the wall time of a long call includes time spent waiting for a
    core; the CPU time does not, so it is the steadier measure of cost."""
    out = []
    cpu = time.process_time()
    for i in range(repeats):
        start = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - start)
    return out, time.process_time() - cpu


def student_speed(served, repeats: int) -> dict:
    """One user per call, 64 per call, all users in one call: the whole recommendation (pad, score the
    catalogue, leave seen items out, top-10), per backend."""
    from recdistill.serve.recommend import recommend_histories
    from benchmarks.serving.serving_http import percentile

    cat = served.catalogue
    histories = [cat.histories[u] for u in cat.users()]
    n = len(histories)

    def rec(batch):
        return recommend_histories(served.scorer, served.max_len, batch, 10, batch_size=len(batch))

    rec(histories[:64])  # warm-up
    one, one_cpu = timed(lambda i: rec([histories[i % n]]), repeats)
    b64, b64_cpu = timed(lambda i: rec([histories[(i * 64 + j) % n] for j in range(64)]), max(5, repeats // 10))
    full, full_cpu = timed(lambda i: rec(histories), 3)
    return {"backend": served.scorer.name, "users": n,
            "batch1_p50_ms": round(1000 * percentile(one, 50), 3), "batch1_p99_ms": round(1000 * percentile(one, 99), 3),
            "batch1_users_per_s": round(len(one) / sum(one), 1),
            "batch1_cpu_ms_per_user": round(1000 * one_cpu / len(one), 3),
            "batch64_p50_ms": round(1000 * percentile(b64, 50), 3), "batch64_users_per_s": round(64 * len(b64) / sum(b64), 1),
            "batch64_cpu_ms_per_user": round(1000 * b64_cpu / (64 * len(b64)), 3),
            "all_users_s": round(statistics.median(full), 4), "all_users_users_per_s": round(n / statistics.median(full), 1),
            "all_users_cpu_ms_per_user": round(1000 * full_cpu / (3 * n), 3),
            "all_users_users_per_cpu_s": round(3 * n / full_cpu, 1),
            "repeats": {"batch1": repeats, "batch64": len(b64), "all": 3}}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--student", required=True, help="the checkpoint to serve (a distilled student, or a student)")
    p.add_argument("--teacher-student", default=None, help="the student checkpoint the teacher reads (default --student)")
    p.add_argument("--teacher-adapter", default=None, help="a trained teacher adapter folder (default: untrained adapters)")
    p.add_argument("--teacher-users", type=int, default=4)
    p.add_argument("--teacher-batch", type=int, default=4)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--repeats", type=int, default=200, help="batch-1 calls per backend")
    p.add_argument("--http-requests", type=int, default=400, help="requests per concurrency level")
    p.add_argument("--note", default="", help="a sentence on how the models were trained, printed with the results")
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args()
    torch.set_num_threads(args.threads)

    from benchmarks.common.machine import load_average
    from benchmarks.serving.serving_http import load_test, running_server
    from recdistill.data.prepared import load_prepared
    from recdistill.serve.onnx_export import export_model
    from recdistill.serve.source import open_checkpoint, open_onnx, prepared_folder_for
    from recdistill.student.checkpoint import load_recommender

    load_before = load_average()
    rec = load_recommender(args.student)
    data = load_prepared(prepared_folder_for(rec, None))
    torch_served = open_checkpoint(args.student)
    tmp = Path(tempfile.mkdtemp(prefix="serving-bench-"))
    export_model(rec.model, torch_served.catalogue, tmp / "model", {"kind": rec.kind})
    onnx_served = open_onnx(tmp / "model", threads=args.threads)
    speed = [student_speed(torch_served, args.repeats), student_speed(onnx_served, args.repeats)]
    print(json.dumps(speed, indent=1), flush=True)

    http = []
    bodies = [{"user": int(u), "k": 10} for u in torch_served.catalogue.users()]
    with running_server(str(tmp / "model"), args.threads) as port:
        load_test(port, bodies, 1, 20)  # warm-up
        for concurrency in (1, 8, 32):
            http.append(load_test(port, bodies, concurrency, args.http_requests))
            print(json.dumps(http[-1]), flush=True)

    from benchmarks.serving.serving_teacher import teacher_cost_and_quality

    teacher = teacher_cost_and_quality(args, data, rec)
    result = {"student": {"checkpoint": args.student, "kind": rec.kind, "model": rec.model_config},
              "note": args.note, "student_speed": speed, "http": http, "teacher": teacher, "threads": args.threads,
              "load_average_before": load_before, "load_average_after": load_average(),
              "machine": f"{os.cpu_count()} CPUs, no GPU; how busy the machine was is in the load averages"}
    best_batched = max(s["all_users_users_per_s"] for s in speed)
    result["cheaper_x_batched"] = round(teacher["seconds_per_user"] * best_batched, 0)
    best_cpu = min(s["all_users_cpu_ms_per_user"] for s in speed) / 1000
    result["cheaper_x_cpu_time"] = round(teacher["cpu_seconds_per_user"] / best_cpu, 0)
    result["cheaper_x_batch1_http"] = round(teacher["seconds_per_user"] / (http[0]["p50_ms"] / 1000), 0)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "serving.json").write_text(json.dumps(result, indent=2) + "\n")
    from benchmarks.serving.serving_report import render

    md = out / "serving.md"
    previous = md.read_text() if md.is_file() else ""
    marker = "<!-- serving_operations"  # the section benchmarks/serving/serving_operations.py writes is kept
    tail = previous[previous.index(marker):] if marker in previous else ""
    md.write_text(render(result) + ("\n" + tail if tail else ""))
    print(render(result))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
