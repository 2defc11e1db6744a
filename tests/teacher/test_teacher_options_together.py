"""The options of issue 12 work together in one real `train teacher` + `eval teacher` run on the tiny
Llama: iLoRA's conv router and gate window, LLaRA's curriculum, the optimizer's groups, the LoRA scaling
rule, history-only prompts, length-bucketed batches, adapters in the top layer only, and LLaRA's protocol."""

from __future__ import annotations

import pytest
import torch

from recdistill.config import compose
from recdistill.data.prepared import load_prepared
from teacher_fixtures import CACHE, make_student, write_student_checkpoint

OPTIONS = ["teacher.gate=conv", "teacher.gate_window=5", "teacher.curriculum=llara", "teacher.lora.scaling=standard",
           "teacher.prompt.candidates=none", "teacher.data.length_bucket_batches=2", "teacher.lora.top_layers=1",
           "train.router_lr_scale=0.5", "train.bridge_weight_decay=0.01"]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    from conftest import make_tiny_prepared
    from recdistill.recipes.teacher import train_teacher

    root = tmp_path_factory.mktemp("together")
    prepared = make_tiny_prepared(root / "data" / "tiny")
    student = write_student_checkpoint(root / "student.ckpt", make_student(), load_prepared(prepared))
    common = [f"prepared={prepared}", f"paths.runs_dir={root / 'runs'}", f"paths.cache_dir={CACHE}",
              "run.progress_bar=false", "llm=tiny-llama", "train.eval_batch_size=4", "eval.candidates.draws=1",
              "eval.candidates.limit_users=4", "eval.candidates.max_new_tokens=4", "eval.candidates.splits=[val]"]
    cfg = compose("teacher", common + OPTIONS + [
        f"teacher.student_checkpoint={student}", "train.batch_size=4", "train.limit_train_batches=2",
        "train.limit_val_batches=0", "train.limit_test_batches=0", "teacher.data.train_positions=last"])
    return train_teacher(cfg), common


def test_every_option_reaches_the_saved_adapter(run):
    from recdistill.teacher.checkpoint import read_adapter_meta
    from recdistill.teacher.model import TeacherSpec

    result, _ = run
    meta = read_adapter_meta(result.artefacts["adapter"])
    spec = TeacherSpec.from_dict(meta["spec"])
    assert (spec.gate, spec.gate_window, spec.lora.scaling_rule, spec.lora.top_layers) == ("conv", 5, "standard", 1)
    assert spec.lora.scaling == 32 / 8
    assert meta["teacher"]["prompt"]["candidates"] == "none"


def test_options_hold_in_the_trained_teacher(run):
    from recdistill.recipes.teacher import load_trained_teacher
    from recdistill.recipes.teacher_settings import teacher_optim_settings
    from recdistill.teacher.optim import param_groups

    result, common = run
    cfg = compose("teacher", common + OPTIONS)
    teacher, *_ = load_trained_teacher(result.artefacts["adapter"], load_prepared(cfg.prepared), CACHE)
    groups = {g["name"]: g for g in param_groups(teacher, teacher_optim_settings(cfg))}
    # top_layers freezes the projector, so its group is left out; the gate keeps its own rate and decay
    assert set(groups) == {"lora", "gate"}
    assert groups["gate"]["lr"] == pytest.approx(0.5 * float(cfg.train.lr)) and groups["gate"]["weight_decay"] == 0.01
    lora_names = [n for n, p in teacher.named_parameters() if p.requires_grad and "lora" in n]
    assert lora_names and all(".layers.1." in n for n in lora_names)
    assert any(torch.count_nonzero(p) for n, p in teacher.named_parameters() if "lora_B" in n)  # it trained


def test_llara_protocol_runs_on_history_only_prompts(run):
    from recdistill.recipes.teacher import evaluate_teacher

    result, common = run
    metrics = evaluate_teacher(compose("teacher", common + ["teacher.eval.protocol=llara"]),
                               result.artefacts["adapter"]).metrics
    for name in ("teacher_cand20_ndcg@10", "teacher_valid_ratio", "student_cand20_ndcg@10"):
        assert 0.0 <= metrics[f"val/llara_{name}"] <= 1.0
    assert metrics["val/llara_users"] == 4
