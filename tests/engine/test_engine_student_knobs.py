"""Each efficiency knob takes effect on the student workload (observed through a callback on a real run)."""

import math

import lightning as L
import pytest
import torch

from conftest import make_tiny_prepared
from recdistill.config import compose
from recdistill.recipes.student import train_student

TINY = ["student.hidden_size=16", "student.num_blocks=1", "student.max_len=10", "train.batch_size=4",
        "train.max_epochs=1", "run.progress_bar=false", "eval.sampled_negatives=0"]


class Probe(L.Callback):
    """Records what the Trainer really used."""

    def __init__(self):
        self.block_calls_per_step: list[int] = []
        self.linear_dtypes: set = set()
        self._calls = 0
        self.seen = {}

    def on_train_start(self, trainer, pl_module):
        model = pl_module.model
        for block in model.blocks:
            block.register_forward_pre_hook(self._count)
        model.blocks[0].ffn[0].register_forward_hook(lambda m, i, o: self.linear_dtypes.add(o.dtype))
        self.seen["optimizer"] = trainer.optimizers[0]
        self.seen["loader"] = trainer.train_dataloader
        self.seen["module"] = pl_module
        self.seen["batches"] = trainer.num_training_batches

    def _count(self, *_):
        self._calls += 1

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        self.block_calls_per_step.append(self._calls)
        self._calls = 0

    def on_train_end(self, trainer, pl_module):
        self.seen["global_step"] = trainer.global_step


def run(prepared, tmp_path, *overrides):
    probe = Probe()
    cfg = compose("student", [f"prepared={prepared}", f"paths.runs_dir={tmp_path / 'runs'}", *TINY, *overrides])
    train_student(cfg, extra_callbacks=[probe])
    return probe


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return make_tiny_prepared(tmp_path_factory.mktemp("data") / "tiny")


@pytest.fixture(scope="module")
def baseline(tiny, tmp_path_factory):
    """One run with every knob at its CPU default, compared against by each test."""
    return run(tiny, tmp_path_factory.mktemp("baseline"), "efficiency.fused_adamw=false")


def test_baseline_uses_no_knob(baseline):
    assert set(baseline.block_calls_per_step) == {1}
    assert baseline.linear_dtypes == {torch.float32}
    assert not baseline.seen["optimizer"].defaults["fused"]
    assert baseline.seen["global_step"] == baseline.seen["batches"]
    assert baseline.seen["loader"].num_workers == 0
    assert baseline.seen["module"].model._compiled_call_impl is None


def test_gradient_checkpointing_runs_each_block_forward_twice(tiny, tmp_path):
    assert set(run(tiny, tmp_path, "efficiency.gradient_checkpointing=true").block_calls_per_step) == {2}


def test_fused_adamw_accumulation_and_workers(tiny, tmp_path):
    probe = run(tiny, tmp_path, "efficiency.fused_adamw=true", "efficiency.accumulate_grad_batches=3",
                "efficiency.num_workers=1", "efficiency.persistent_workers=false")
    assert probe.seen["optimizer"].defaults["fused"] is True
    assert probe.seen["global_step"] == math.ceil(probe.seen["batches"] / 3)
    assert probe.seen["loader"].num_workers == 1


def test_bf16_mixed_runs_the_forward_in_bf16_on_cpu(tiny, tmp_path):
    assert run(tiny, tmp_path, "efficiency.precision=bf16-mixed").linear_dtypes == {torch.bfloat16}


def test_compile_wraps_the_model(tiny, tmp_path):
    probe = run(tiny, tmp_path, "efficiency.compile=eager")  # the eager backend: no C++ build in tests
    assert probe.seen["module"].model._compiled_call_impl is not None
