"""One-shot GPU check: precision, LoRA / QLoRA / attention kernels, the QLoRA adapter round trip, gradient
accumulation, scoring batch size, ``train.batch_size=auto``, the student's epoch and ``torch.compile``,
teacher tokens/s and MFU, and the LM presets with and without the efficiency defaults.

    python benchmarks/gpu/gpu_check.py                     # on a machine with one CUDA GPU, < 8 minutes
    python benchmarks/gpu/gpu_check.py --only precision-fp32 precision-bf16-true
    python benchmarks/gpu/gpu_check.py --device cpu --tiny --in-process   # what the CPU test runs

Each arm runs in its own process (clean CUDA peaks; a hung compile or an out-of-memory cannot take the
rest down) and is killed at its time limit; arms start only while the overall budget lasts. Writes
``<out>/gpu_check.json`` and ``gpu_check.md``; exit status 1 when a check fails or an arm errs or
times out. Without CUDA (and no ``--device cpu``) it prints "no CUDA device: nothing to check" and exits 0.
See docs/gpu.md for what it needs and how to read the table.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import traceback
from importlib import metadata
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository root
sys.path.insert(0, str(ROOT))  # so that `benchmarks.*` imports work from any folder
RESULTS = ROOT / "benchmarks" / "results"
if importlib.util.find_spec("recdistill") is None:  # a bare checkout on the GPU machine: use its src/
    sys.path.insert(1, str(ROOT / "src"))

# name, "module.function", arguments, time limit in seconds on a GPU; in order of importance, since arms
# start only while the budget lasts.
ARMS = [
    ("precision-fp32", "teacher_arms.precision", ("fp32",), 40),
    ("precision-bf16-mixed", "teacher_arms.precision", ("bf16-mixed",), 40),
    ("precision-bf16-true", "teacher_arms.precision", ("bf16-true",), 40),
    ("precision-gpu-default", "teacher_arms.precision", ("gpu-default",), 40),
    ("adapters-smollm2-135m", "teacher_arms.adapters_attention", ("smollm2-135m",), 50),
    ("qlora-smollm2-135m", "qlora_arms.qlora_step", ("smollm2-135m",), 60),
    ("qlora-roundtrip", "qlora_arms.roundtrip", (), 60),
    ("adapters-llama2-7b", "teacher_arms.adapters_attention", ("llama2-7b",), 90),
    ("qlora-llama2-7b", "qlora_arms.qlora_step", ("llama2-7b",), 150),
    ("accumulation", "teacher_arms.accumulation", (), 45),
    ("inference-batch", "teacher_arms.inference_batch", (), 45),
    ("batch-size-auto", "teacher_arms.batch_size_auto", (), 60),
    ("student-epoch", "other_arms.student_epoch", (), 45),
    ("lm-small", "other_arms.lm_preset", ("small",), 45),
    ("lm-medium", "other_arms.lm_preset", ("medium",), 50),
    ("lm-large", "other_arms.lm_preset", ("large",), 60),
    ("student-compile", "other_arms.student_compile", (), 120),
]
MIN_START_S = 20  # an arm is not started with less budget than this left
NO_CUDA = "no CUDA device: nothing to check"


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "not installed"


def environment(device: str) -> dict:
    import torch

    env = {"device": device, "torch": torch.__version__, "cuda": torch.version.cuda, "device_name": "cpu"}
    for dist in ("transformers", "peft", "lightning", "bitsandbytes"):
        env[dist] = _version(dist)
    env["flash_attn"] = _version("flash-attn")
    if device == "cuda":
        props = torch.cuda.get_device_properties(0)
        env.update(device_name=props.name, memory_gib=round(props.total_memory / 2**30, 1),
                   bf16=torch.cuda.is_bf16_supported())
    return env


def run_arm(name: str, ctx) -> list[dict]:
    """Run one arm here; every row gets ``arm`` and ``status``."""
    from benchmarks.gpu.gpucheck.common import Skip

    _, target, args, _ = next(a for a in ARMS if a[0] == name)
    module, func = target.split(".")
    try:
        rows = getattr(importlib.import_module(f"benchmarks.gpu.gpucheck.{module}"), func)(ctx, *args)
    except Skip as exc:
        rows = [{"status": "skipped", "reason": str(exc)}]
    return [{"arm": name, "status": "ok", **r} for r in rows]


def _child(args, name: str, limit: float, scratch: Path) -> list[dict]:
    result = scratch / f"{name}.json"
    cmd = [sys.executable, __file__, "--arm", name, "--result", str(result), "--scratch", str(scratch),
           "--device", args.device, "--loop-seconds", str(args.loop_seconds)]
    cmd += ["--tiny"] if args.tiny else []
    cmd += ["--peak-tflops", str(args.peak_tflops)] if args.peak_tflops else []
    cmd += ["--threads", str(args.threads)] if args.threads else []
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        out, _ = proc.communicate(timeout=limit)
    except KeyboardInterrupt:  # the child runs in its own session: Ctrl-C does not reach it
        os.killpg(proc.pid, signal.SIGKILL)
        raise
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # the arm and any compile workers it started
        out, _ = proc.communicate()
        stages = [line for line in out.splitlines() if line.startswith("stage:")]
        return [{"arm": name, "status": "timeout", "reason": f"stopped at its {round(limit, 1):g} s limit"
                 + (f" ({stages[-1]})" if stages else "")}]
    if proc.returncode != 0 or not result.is_file():
        tail = " | ".join(out.strip().splitlines()[-6:])
        return [{"arm": name, "status": "error", "reason": f"exit {proc.returncode}: {tail}"}]
    return json.loads(result.read_text())


def _write(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text)
    tmp.replace(path)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto", choices=("auto", "cuda", "cpu"))
    p.add_argument("--tiny", action="store_true", help="tiny shapes (the CPU test)")
    p.add_argument("--in-process", action="store_true", help="run arms in this process, without time limits")
    p.add_argument("--only", nargs="*", help="arm names to run (default: all)")
    p.add_argument("--budget-s", type=float, default=450.0, help="no arm starts after this many seconds")
    p.add_argument("--arm-limit-s", type=float, help="cap every arm's time limit at this many seconds")
    p.add_argument("--loop-seconds", type=float, default=6.0, help="each timed loop stops after this long")
    p.add_argument("--peak-tflops", type=float, help="the GPU's peak bf16 TFLOP/s for MFU (default: from its name)")
    p.add_argument("--threads", type=int, help="torch CPU threads (the CPU test uses 1)")
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument("--keep-scratch", action="store_true", help="keep the saved models and adapters")
    p.add_argument("--arm", help=argparse.SUPPRESS)
    p.add_argument("--result", help=argparse.SUPPRESS)
    p.add_argument("--scratch", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    names = [a[0] for a in ARMS]
    unknown = [n for n in (args.only or []) + ([args.arm] if args.arm else []) if n not in names]
    if unknown:
        print(f"error: unknown arm(s) {', '.join(unknown)}; choose from: {', '.join(names)}", file=sys.stderr)
        return 2

    import torch

    threads = torch.get_num_threads()
    if args.threads:
        torch.set_num_threads(args.threads)
    try:
        return _run(args)
    finally:
        torch.set_num_threads(threads)


def _run(args) -> int:
    import torch

    if args.device == "auto":
        if not torch.cuda.is_available():
            print(NO_CUDA)
            return 0
        args.device = "cuda"
    if args.device == "cuda" and not torch.cuda.is_available():
        print(f"--device cuda: {NO_CUDA}")
        return 0
    from benchmarks.gpu.gpucheck.common import Context, peak_bf16_tflops

    env = environment(args.device)
    peak_note = "no MFU on a CPU"
    if args.device == "cuda":
        known, peak_note = peak_bf16_tflops(env["device_name"])
        if args.peak_tflops:
            peak_note = f"{args.peak_tflops} TFLOP/s bf16 (given with --peak-tflops)"
        args.peak_tflops = args.peak_tflops or known

    if args.arm:  # a child: one arm, rows to --result
        ctx = Context(args.device, args.tiny, Path(args.scratch), args.loop_seconds, args.peak_tflops)
        rows = run_arm(args.arm, ctx)
        Path(args.result).write_text(json.dumps(rows, default=str))
        return 0

    scratch = Path(tempfile.mkdtemp(prefix="gpu_check_"))
    ctx = Context(args.device, args.tiny, scratch, args.loop_seconds, args.peak_tflops)
    start, rows = time.perf_counter(), []
    try:
        for name, _, _, limit in ARMS:
            if args.only and name not in args.only:
                continue
            left = args.budget_s - (time.perf_counter() - start)
            if not args.in_process and left < MIN_START_S:
                rows.append({"arm": name, "status": "skipped", "reason": f"overall budget of {args.budget_s:.0f} s spent; "
                             f"run it alone with --only {name}"})
                continue
            print(f"[{time.perf_counter() - start:6.1f} s] {name}", flush=True)
            if args.in_process:
                try:
                    rows += run_arm(name, ctx)
                except Exception as exc:  # noqa: BLE001 - recorded as the arm's error, the others still run
                    traceback.print_exc()
                    rows.append({"arm": name, "status": "error", "reason": f"{type(exc).__name__}: {exc}"})
            else:
                allowed = min(limit, args.arm_limit_s or limit)
                got = _child(args, name, min(allowed, left), scratch)
                if left < allowed and got[0]["status"] == "timeout":  # the budget, not the arm's own limit
                    got = [{"arm": name, "status": "skipped", "reason": f"overall budget ran out during the arm "
                            f"({left:.0f} s were left); run it alone with --only {name}"}]
                rows += got
            for r in rows:
                if r["arm"] == name and r["status"] != "ok":
                    print(f"    {r['status']}: {r.get('reason', '')[:300]}", flush=True)
    finally:
        if not args.keep_scratch:
            shutil.rmtree(scratch, ignore_errors=True)

    from benchmarks.gpu.gpucheck.report import checks, lm_summary, render

    verdicts = checks(rows, args.device == "cuda")
    failed = any(c["status"] == "fail" for c in verdicts)
    record = {"environment": env, "peak": peak_note, "peak_tflops": args.peak_tflops, "tiny": args.tiny,
              "budget_s": args.budget_s, "wall_s": round(time.perf_counter() - start, 1),
              "verdict": "fail" if failed else "pass", "checks": verdicts, "lm_summary": lm_summary(rows), "rows": rows}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    stem = "gpu_check_tiny" if args.tiny else "gpu_check"
    _write(out / f"{stem}.json", json.dumps(record, indent=2, default=str) + "\n")
    md = render(record)
    _write(out / f"{stem}.md", md)
    print(md)
    for c in verdicts:
        if c["status"] == "fail":
            print(f"GPU CHECK FAILED: {c['check']}: {c['detail']}", file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
