"""benchmarks/gpu/gpu_check.py cannot rot: its arms run here with tiny shapes on the CPU (the CUDA-only ones
say why they skip), its verdicts catch a precision switch that changes nothing, and without CUDA the
script says so and exits 0."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "benchmarks" / "gpu" / "gpu_check.py"
# The 7B and medium/large LM arms run the very same functions as these at the same tiny shape.
# Default run: the precision trio, the CUDA-only skips, the adapter round trip and the LM; the other arms
# run in the slow test (together the two cover every arm a CPU can run).
FAST_ARMS = ["precision-fp32", "precision-bf16-mixed", "precision-bf16-true", "precision-gpu-default",
             "qlora-smollm2-135m", "qlora-roundtrip", "lm-small"]
SLOW_ARMS = ["adapters-smollm2-135m", "accumulation", "inference-batch", "batch-size-auto", "student-epoch",
             "student-compile"]
# A GPU machine may have torch, transformers, peft and lightning but no omegaconf: the arms must not need it.
# ``sys.modules[name] = None`` makes that import fail (and find_spec answer None) in the child process only.
WITHOUT_OMEGACONF = """
import json, sys
sys.modules["omegaconf"] = None
sys.path.insert(0, sys.argv[1])
from benchmarks.gpu import gpu_check
sys.exit(gpu_check.main(json.loads(sys.argv[2])))
"""


sys.path.insert(0, str(ROOT))  # `benchmarks.*`: the script and its parts (benchmarks/gpu/gpucheck)


def _gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""))


def _rows_by_arm(record: dict) -> dict:
    rows = {}
    for r in record["rows"]:
        rows.setdefault(r["arm"], []).append(r)
    return rows


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the behaviour without CUDA")
def test_without_cuda_it_says_nothing_to_check_and_exits_0():
    proc = subprocess.run([sys.executable, str(SCRIPT)], capture_output=True, text=True, env=_env(), timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "no CUDA device: nothing to check"


def test_unknown_arm_is_a_one_line_error(capsys):
    assert _gpu_check().main(["--only", "precision-fp64"]) == 2
    assert "unknown arm(s) precision-fp64; choose from: precision-fp32" in capsys.readouterr().err


def test_cpu_arms_run_at_tiny_shapes_without_omegaconf(tmp_path):
    assert set(FAST_ARMS + SLOW_ARMS) <= {a[0] for a in _gpu_check().ARMS}
    args = ["--device", "cpu", "--tiny", "--in-process", "--threads", "1", "--out", str(tmp_path), "--only", *FAST_ARMS]
    proc = subprocess.run([sys.executable, "-c", WITHOUT_OMEGACONF, str(ROOT), json.dumps(args)],
                          capture_output=True, text=True, env=_env(), timeout=300)
    record = json.loads((tmp_path / "gpu_check_tiny.json").read_text())
    rows = _rows_by_arm(record)
    assert proc.returncode == 0, (record["checks"], proc.stderr[-2000:])
    assert record["verdict"] == "pass"
    assert record["environment"].get("omegaconf") is None  # not even asked for
    assert set(rows) == set(FAST_ARMS)
    assert not [r for r in record["rows"] if r["status"] not in ("ok", "skipped")]
    skipped = {r["arm"] for r in record["rows"] if r["status"] == "skipped"}
    assert skipped == {"precision-gpu-default", "qlora-smollm2-135m"}
    assert "CUDA" in rows["qlora-smollm2-135m"][0]["reason"]
    # the precision arms really switched precision: activations inside the LLM and the adapters' dtype
    dtypes = {r["setting"]: (r["activation_dtype"], r["lora_dtype"]) for a in FAST_ARMS[:3] for r in rows[a]}
    assert dtypes == {"fp32": ("float32", "float32"), "bf16-mixed": ("bfloat16", "float32"),
                      "bf16-true": ("bfloat16", "bfloat16")}
    trip = rows["qlora-roundtrip"][0]
    assert trip["max_abs_diff_loaded"] == 0.0 and trip["max_abs_diff_without_adapters"] > 1e-3
    assert [r["setting"] for r in rows["lm-small"]] == ["efficiency=none", "efficiency=default"]
    assert rows["lm-small"][0]["matmul_precision"] == "highest" and rows["lm-small"][1]["uniform_dropout"] is True
    # efficiency=default's "auto" values as the engine resolves them on a CPU
    assert rows["lm-small"][1]["precision"] == "32-true" and rows["lm-small"][1]["fused_adamw"] is False
    md = (tmp_path / "gpu_check_tiny.md").read_text()
    assert "**Verdict: PASS**" in md and "## qlora-roundtrip" in md


@pytest.mark.slow
def test_slower_cpu_arms_run_at_tiny_shapes(tmp_path):
    rc = _gpu_check().main(["--device", "cpu", "--tiny", "--in-process", "--threads", "1", "--out", str(tmp_path),
                            "--only", *SLOW_ARMS])
    record = json.loads((tmp_path / "gpu_check_tiny.json").read_text())
    rows = _rows_by_arm(record)
    assert rc == 0, record["checks"]
    assert set(rows) == set(SLOW_ARMS)
    assert not [r for r in record["rows"] if r["status"] not in ("ok", "skipped")]
    fa2 = [r for r in rows["adapters-smollm2-135m"] if "flash_attention_2" in r["setting"]]
    assert fa2[0]["status"] == "skipped" and "flash-attn" in fa2[0]["reason"]
    assert [r["status"] for r in rows["adapters-smollm2-135m"]].count("ok") == 3  # SDPA, eager, PEFT LoRA
    assert [r["accumulate"] for r in rows["accumulation"]] == [1, 4, 8]
    assert all(r["tokens_per_s"] > 0 for r in rows["accumulation"])
    assert rows["batch-size-auto"][0]["found_batch_size"] >= 1
    assert rows["student-epoch"][0]["positions_per_s"] > 0
    assert [r["setting"] for r in rows["inference-batch"]] == ["candidate_batch_size 64", "candidate_batch_size 256"]
    assert rows["student-compile"][1]["first_step_s (compile)"] > 0


def _precision_rows(mb: tuple[float, float, float]) -> list[dict]:
    dtypes = {"fp32": ("float32", "float32"), "bf16-mixed": ("bfloat16", "float32"), "bf16-true": ("bfloat16", "bfloat16")}
    return [{"arm": f"precision-{s}", "status": "ok", "setting": s, "activation_dtype": dtypes[s][0],
             "lora_dtype": dtypes[s][1], "peak_allocated_mb": m, "step_s": 0.1 * (i + 1)}
            for i, (s, m) in enumerate(zip(dtypes, mb))]


def test_precision_check_fails_loudly_when_memory_does_not_change():
    from benchmarks.gpu.gpucheck.report import precision_check

    assert precision_check(_precision_rows((5000.0, 3000.0, 1500.0)), cuda=True)["status"] == "pass"
    same = precision_check(_precision_rows((5060.0, 5060.0, 5061.0)), cuda=True)  # seed 001's 5.06 GB twice
    assert same["status"] == "fail" and "changed nothing" in same["detail"]
    rows = _precision_rows((5000.0, 3000.0, 1500.0))
    rows[1]["activation_dtype"] = "float32"  # autocast that did not take effect
    assert precision_check(rows, cuda=False)["status"] == "fail"
    rows[2]["status"] = "timeout"
    assert precision_check(rows, cuda=True)["detail"].startswith("could not compare: bf16-true")
    assert precision_check(rows[:2], cuda=True)["status"] == "n/a"


def test_arms_run_in_child_processes_and_stop_at_their_time_limit(tmp_path):
    """The path a GPU run takes: one process per arm, rows handed back in a file; an arm past its limit is
    killed and reported, which fails the run."""
    gpu_check = _gpu_check()
    base = ["--device", "cpu", "--tiny", "--threads", "1"]
    assert gpu_check.main([*base, "--out", str(tmp_path / "a"), "--only", "qlora-smollm2-135m"]) == 0
    row = json.loads((tmp_path / "a" / "gpu_check_tiny.json").read_text())["rows"][0]
    assert row["status"] == "skipped" and "CUDA" in row["reason"]
    assert gpu_check.main([*base, "--out", str(tmp_path / "b"), "--only", "lm-small", "--arm-limit-s", "0.5"]) == 1
    record = json.loads((tmp_path / "b" / "gpu_check_tiny.json").read_text())
    assert record["rows"] == [{"arm": "lm-small", "status": "timeout", "reason": "stopped at its 0.5 s limit"}]
    assert record["verdict"] == "fail"


@pytest.mark.slow
def test_a_measuring_arm_hands_its_rows_back_from_its_child_process(tmp_path):
    gpu_check = _gpu_check()
    assert gpu_check.main(["--device", "cpu", "--tiny", "--threads", "1", "--out", str(tmp_path), "--only",
                           "precision-fp32"]) == 0
    row = json.loads((tmp_path / "gpu_check_tiny.json").read_text())["rows"][0]
    assert row["status"] == "ok" and row["activation_dtype"] == "float32"
