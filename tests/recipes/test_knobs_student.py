"""Student knobs not covered by test_engine_student_knobs.py (which checks gradient checkpointing, fused
AdamW = true, accumulation, bf16-mixed and compile wrapping on whole runs): batch sizes, the DataLoader
knobs, fp16 refused on a CPU, fused AdamW's auto setting, the compiled forward really running under
torch.compile, and train.batch_size=auto. Set through the config into the pieces `train student` builds."""

import json

import lightning as L
import pytest
import torch
from torch import nn

from recdistill.config import compose
from recdistill.engine import build_trainer
from recdistill.errors import ConfigError
from recdistill.recipes.lifecycle import efficiency, prepared_data
from recdistill.recipes.student import build_datamodule, student_module, train_student

SMALL = ["student.hidden_size=16", "student.num_blocks=1", "eval.sampled_negatives=0", "run.progress_bar=false",
         "student.dropout=0.0"]


def _pieces(prepared, tmp_path, *overrides):
    cfg = compose("student", [f"prepared={prepared}", f"paths.runs_dir={tmp_path / 'runs'}", *SMALL, *overrides])
    data = prepared_data(cfg)
    dm = build_datamodule(cfg, data, "cpu")
    module = student_module(cfg, data.num_items)
    module.compile_model(cfg.efficiency.compile)
    return cfg, dm, module


def _fit(cfg, dm, module, callbacks=(), batches=2):
    trainer = build_trainer(efficiency(cfg), None, callbacks=list(callbacks), max_epochs=1, limit_train_batches=batches,
                            limit_val_batches=0, progress_bar=False, loggers=False)
    trainer.fit(module, datamodule=dm)
    return trainer


class _Count(L.Callback):
    def __init__(self):
        self.batch_sizes = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.batch_sizes.append(int(batch["inputs"].shape[0]))


def test_batch_sizes_reach_the_loaders_and_the_steps(tiny_prepared, tmp_path):
    cfg, dm, module = _pieces(tiny_prepared, tmp_path, "train.batch_size=5", "train.eval_batch_size=7")
    assert dm.train_dataloader().batch_size == 5 and dm.val_dataloader().batch_size == 7
    count = _Count()
    _fit(cfg, dm, module, [count])
    assert count.batch_sizes == [5, 5]


def test_dataloader_knobs_reach_the_loader_and_start_workers(tiny_prepared, tmp_path):
    cfg, dm, _ = _pieces(tiny_prepared, tmp_path, "efficiency.num_workers=2", "efficiency.persistent_workers=true",
                         "efficiency.prefetch_factor=3", "efficiency.pin_memory=true")
    loader = dm.train_dataloader()
    assert (loader.num_workers, loader.persistent_workers, loader.prefetch_factor, loader.pin_memory) == (2, True, 3, True)
    with pytest.warns(UserWarning, match="no accelerator"):  # documented fallback: pinning needs a GPU
        it = iter(loader)
    assert type(it).__name__ == "_MultiProcessingDataLoaderIter" and len(it._workers) == 2
    assert it._prefetch_factor == 3 and not it._pin_memory
    assert next(it)["inputs"].shape[0] > 0  # batches come from the workers
    assert iter(loader) is it  # persistent workers: the same worker processes serve the next epoch
    loader._iterator = None
    del it
    # with no workers the worker-only knobs are not passed at all (PyTorch would refuse them)
    _, dm0, _ = _pieces(tiny_prepared, tmp_path, "efficiency.num_workers=0", "efficiency.prefetch_factor=3")
    loader0 = dm0.train_dataloader()
    assert loader0.num_workers == 0 and loader0.prefetch_factor is None and not loader0.pin_memory  # auto: CPU


def test_fp16_on_cpu_is_a_clear_error(tiny_prepared, tmp_path):
    cfg, dm, module = _pieces(tiny_prepared, tmp_path, "efficiency.precision=16-mixed")
    with pytest.raises(ConfigError, match="16-mixed needs a GPU"):
        _fit(cfg, dm, module)


def test_compile_knob_runs_the_model_under_torch_compile(tiny_prepared, tmp_path):
    torch._dynamo.reset()
    # eager backend: the same graph capture as inductor, without a C++ build (which takes minutes here)
    cfg, dm, module = _pieces(tiny_prepared, tmp_path, "efficiency.compile=eager")
    assert module.model._compiled_call_impl is not None
    compiling = []
    module.model.blocks[0].register_forward_hook(lambda m, i, o: compiling.append(torch.compiler.is_compiling()))
    _fit(cfg, dm, module, batches=1)
    assert compiling and all(compiling)
    _, _, plain = _pieces(tiny_prepared, tmp_path, "efficiency.compile=false")
    assert plain.model._compiled_call_impl is None
    torch._dynamo.reset()


def test_fused_adamw_auto_is_off_on_cpu(tiny_prepared, tmp_path):
    cfg, dm, module = _pieces(tiny_prepared, tmp_path, "efficiency.fused_adamw=auto")
    trainer = _fit(cfg, dm, module, batches=1)
    assert not trainer.optimizers[0].defaults["fused"]  # auto = fused only when every parameter is on CUDA


def test_batch_size_auto_is_searched_and_recorded_in_the_run(tiny_prepared, tmp_path):
    cfg = compose("student", [f"prepared={tiny_prepared}", f"paths.runs_dir={tmp_path / 'runs'}", *SMALL,
                              "train.batch_size=auto", "train.max_epochs=1", "train.limit_train_batches=1",
                              "efficiency.batch_size_search.cpu_memory_mb=100000",
                              "efficiency.batch_size_search.max_batch_size=16"])
    result = train_student(cfg)
    found = json.loads((tmp_path / "runs" / result.run_dir.name / "batch_size_search.json").read_text())
    assert found["train"]["batch_size"] == 16 and found["train"]["device"] == "cpu"
    assert [t["batch_size"] for t in found["train"]["tries"]] == [8, 16]
    assert result.stages[-1]["stage"] == "test"


def test_uniform_dropout_knob_picks_the_dropout_layer_of_student_and_distilled_student(tiny_prepared, tmp_path):
    """efficiency.uniform_dropout: the uniform-draw layer by default, torch's nn.Dropout when off
    (efficiency=none), in the student and in the distilled student; the checkpoint's model config
    does not depend on it."""
    from recdistill.recipes.distill import distill_module
    from recdistill.layers.dropout import CPUFriendlyDropout

    def kinds(model):
        return {type(m) for m in model.modules() if isinstance(m, (nn.Dropout, CPUFriendlyDropout))}

    on = _pieces(tiny_prepared, tmp_path, "student.dropout=0.2")[2].model
    off = _pieces(tiny_prepared, tmp_path, "student.dropout=0.2", "efficiency.uniform_dropout=false")[2].model
    assert kinds(on) == {CPUFriendlyDropout} and kinds(off) == {nn.Dropout}
    assert on.config == off.config
    none = _pieces(tiny_prepared, tmp_path, "student.dropout=0.2", "efficiency=none")[2].model
    assert kinds(none) == {nn.Dropout}
    for setting, want in (("true", CPUFriendlyDropout), ("false", nn.Dropout)):
        cfg = compose("distill", [f"prepared={tiny_prepared}", *SMALL, "student.dropout=0.2", "distill.ed.gamma=0",
                                  f"efficiency.uniform_dropout={setting}"])
        distilled = distill_module(cfg, 40).model
        assert kinds(distilled) == {want}
