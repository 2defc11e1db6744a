"""``auto`` precision and ``llm.dtype=auto`` on a CPU follow the machine: bf16 for the LLM only where its
bf16 products are measured faster than fp32, fp32 everywhere else (the recommenders always)."""

from __future__ import annotations

import json

import pytest
import torch

from recdistill.engine import cpu_bf16 as probe
from recdistill.engine import precision
from recdistill.engine.cpu_bf16 import CpuBf16, decide


@pytest.fixture
def machine(monkeypatch):
    """Set what this 'machine' answers: fast bf16 or not, without running the probe."""
    def set_fast(fast: bool):
        answer = CpuBf16(fast, ("avx512_bf16",) if fast else (), 100.0 if fast else None,
                         440.0 if fast else None, "test")
        monkeypatch.setattr(precision, "cpu_bf16", lambda: answer)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    return set_fast


def test_no_flags_means_fp32_without_a_probe():
    result = decide((), None)
    assert not result.fast and result.fp32_gflops is None and "no AVX512-BF16" in result.reason


def test_flags_with_a_slow_probe_mean_fp32():
    # an Intel Xeon here lists avx512_bf16 but ran the probe at 0.6x fp32's rate
    result = decide(("avx512_bf16",), (145.0, 75.0))
    assert not result.fast and "0.52x" in result.reason


def test_flags_with_a_fast_probe_mean_bf16():
    # the AMD EPYC: 4.4x
    result = decide(("avx512_bf16",), (104.0, 460.0))
    assert result.fast and "4.42x" in result.reason


def test_fast_machine_llm_gets_bf16_recommenders_keep_fp32(machine):
    machine(True)
    assert precision.resolve_precision("auto", "cpu", llm=True) == "bf16-mixed"
    assert precision.resolve_precision("auto", "cpu") == "32-true"
    assert precision.resolve_dtype("auto") == torch.bfloat16


def test_machine_without_fast_bf16_changes_nothing(machine):
    machine(False)
    assert precision.resolve_precision("auto", "cpu", llm=True) == "32-true"
    assert precision.resolve_precision("auto", "cpu") == "32-true"
    assert precision.resolve_dtype("auto") == torch.float32


def test_explicit_settings_are_kept_whatever_the_machine(machine):
    machine(False)
    assert precision.resolve_precision("bf16-mixed", "cpu", llm=True) == "bf16-mixed"
    assert precision.resolve_dtype("bfloat16") == torch.bfloat16
    machine(True)
    assert precision.resolve_precision("32-true", "cpu", llm=True) == "32-true"
    assert precision.resolve_dtype("float32") == torch.float32


def test_environment_override_and_probe_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("RECDISTILL_CACHE", str(tmp_path))
    monkeypatch.setenv("RECDISTILL_CPU_BF16", "1")
    probe.cpu_bf16.cache_clear()
    try:
        assert probe.cpu_bf16().fast and "RECDISTILL_CPU_BF16=1" in probe.cpu_bf16().reason
        # without the override a machine with the flags is probed once and the answer cached on disk
        monkeypatch.delenv("RECDISTILL_CPU_BF16")
        monkeypatch.setattr(probe, "native_flags", lambda: ("avx512_bf16",))
        calls = []
        monkeypatch.setattr(probe, "probe_rates", lambda: calls.append(1) or (100.0, 300.0))
        probe.cpu_bf16.cache_clear()
        assert probe.cpu_bf16().fast
        probe.cpu_bf16.cache_clear()
        assert probe.cpu_bf16().fast and len(calls) == 1  # the second answer came from the file
        saved = json.loads((tmp_path / "cpu_bf16.json").read_text())
        assert [v["bf16_gflops"] for v in saved.values()] == [300.0]
    finally:
        probe.cpu_bf16.cache_clear()


def test_environment_json_records_the_decision(monkeypatch):
    from recdistill.engine import environment

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    answer = CpuBf16(False, (), None, None, "no flags")
    monkeypatch.setattr(environment, "cpu_bf16", lambda: answer)
    assert environment.describe_environment()["cpu_bf16"]["reason"] == "no flags"


def test_trainer_precision_follows_the_llm_flag(machine):
    from recdistill.engine.trainer import build_trainer

    machine(True)
    eff = _efficiency()
    assert build_trainer(eff, None, progress_bar=False, llm=True).precision == "bf16-mixed"
    assert build_trainer(eff, None, progress_bar=False).precision == "32-true"
    machine(False)
    assert build_trainer(eff, None, progress_bar=False, llm=True).precision == "32-true"


def _efficiency():
    from recdistill.config import compose
    from recdistill.recipes.lifecycle import efficiency

    return efficiency(compose("student", []))


def test_teacher_on_a_fast_bf16_machine_trains_a_bf16_base_with_fp32_adapters(tmp_path, monkeypatch, capsys):
    """The whole auto path on the tiny Llama: base weights bf16, trained tensors fp32, Lightning's
    bf16-mixed, a finite loss, and the choice printed and recorded (the machine forced by the override)."""
    from conftest import make_tiny_prepared
    from recdistill.config import compose
    from recdistill.data.prepared import load_prepared
    from recdistill.recipes.teacher import train_teacher
    from teacher_fixtures import CACHE, make_student, write_student_checkpoint

    monkeypatch.setenv("RECDISTILL_CPU_BF16", "1")
    probe.cpu_bf16.cache_clear()
    try:
        prepared = make_tiny_prepared(tmp_path / "data" / "tiny")
        student_ckpt = write_student_checkpoint(tmp_path / "student.ckpt", make_student(), load_prepared(prepared))
        seen = {}

        class Watch(__import__("lightning").Callback):
            def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
                seen["precision"] = trainer.precision
                seen["base"] = module.teacher.llm.get_input_embeddings().weight.dtype
                seen["trained"] = {p.dtype for p in module.teacher.parameters() if p.requires_grad}
                seen["loss"] = float(outputs["loss"])

        cfg = compose("teacher", [f"prepared={prepared}", f"paths.runs_dir={tmp_path / 'runs'}", f"paths.cache_dir={CACHE}",
                                  "run.progress_bar=false", "llm=tiny-llama", f"teacher.student_checkpoint={student_ckpt}",
                                  "train.batch_size=4", "train.limit_train_batches=2", "train.limit_val_batches=1",
                                  "train.limit_test_batches=1", "train.eval_batch_size=4", "teacher.eval.method=likelihood",
                                  "teacher.data.train_positions=last", "teacher.data.last_n=1"])
        result = train_teacher(cfg, extra_callbacks=[Watch()])
    finally:
        probe.cpu_bf16.cache_clear()
    assert seen["precision"] == "bf16-mixed"
    assert seen["base"] == torch.bfloat16 and seen["trained"] == {torch.float32}
    assert seen["loss"] == seen["loss"] and seen["loss"] > 0
    assert "auto precision on this CPU: bf16 for the LLM" in capsys.readouterr().out
    env = json.loads((result.run_dir / "environment.json").read_text())
    assert env["cpu_bf16"]["fast"] is True
