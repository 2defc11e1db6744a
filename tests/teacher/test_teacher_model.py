"""The iLoRA teacher on the tiny Llama: placeholder injection, answer-only loss, checkpoints, KV-cache
scoring, LLM loading errors."""

from __future__ import annotations

import json

import pytest
import torch

from recdistill.data.prepared import load_prepared
from recdistill.teacher.prompt_encoder import PromptEncoder, load_templates
from recdistill.errors import ConfigError, RecdistillError
from recdistill.teacher.checkpoint import load_adapter_weights, read_adapter_meta, save_adapter
from recdistill.teacher.data import PromptCollator, PromptDataset, eval_samples
from recdistill.teacher.llm import load_llm
from recdistill.teacher.scoring import score_candidates, score_full
from teacher_fixtures import CACHE, llm_cfg, make_student, make_teacher, prompt_settings, tokenizer


@pytest.fixture(scope="module")
def val_batch(tmp_path_factory):
    from conftest import make_tiny_prepared

    data = load_prepared(make_tiny_prepared(tmp_path_factory.mktemp("data") / "tiny"))
    enc = PromptEncoder(tokenizer(), data.titles, load_templates())
    ds = PromptDataset(eval_samples(data, "val"), enc, data.num_items, prompt_settings(), "val", False)
    batch = PromptCollator(enc.slot_id, 10, with_prompts=True)([ds[i] for i in range(2)])
    return batch, enc


def test_placeholders_are_replaced_exactly_at_their_slots(val_batch):
    batch, _ = val_batch
    teacher, _ = make_teacher("ilora")
    ids, slots = batch["input_ids"], batch["item_slots"]
    embeds = teacher.embed(ids, slots)
    plain = teacher.embedding_layer(ids)
    changed = (embeds != plain).any(-1)
    assert torch.equal(changed, slots > 0)
    with torch.no_grad():
        expected = teacher.projector(teacher.student.embed_items(slots[slots > 0]))
    torch.testing.assert_close(embeds[slots > 0], expected)


def test_loss_covers_only_answer_tokens(val_batch):
    batch, _ = val_batch
    teacher, _ = make_teacher("ilora")
    out = teacher(batch["input_ids"], batch["attention_mask"], batch["item_slots"], batch["student_seq"],
                  labels=batch["labels"])
    full = teacher(batch["input_ids"], batch["attention_mask"], batch["item_slots"], batch["student_seq"])
    logp = torch.log_softmax(full.logits[:, :-1].float(), -1)
    target = batch["labels"][:, 1:]
    mask = target != -100
    manual = -logp.gather(2, target.clamp(min=0)[..., None]).squeeze(-1)[mask].mean()
    torch.testing.assert_close(out.loss, manual, rtol=1e-4, atol=1e-4)
    # Changing a label outside the answer span changes nothing; only answer tokens carry loss.
    assert int(mask.sum()) == int((batch["labels"] != -100).sum())
    assert out.logits.shape[1] < batch["input_ids"].shape[1]      # logits only for the answer span


@pytest.mark.parametrize("mode", ["ilora", "lora"])
def test_trained_parts_round_trip_onto_a_fresh_base(val_batch, tmp_path, mode):
    batch, _ = val_batch
    student = make_student()
    teacher, _ = make_teacher(mode, student, seed=1)
    with torch.no_grad():
        for p in teacher.projector.parameters():
            p.add_(0.1)
    args = (batch["input_ids"], batch["attention_mask"], batch["item_slots"], batch["student_seq"])
    before = teacher(*args).logits
    save_adapter(teacher, tmp_path / "adapter", {"note": "test"})
    meta = read_adapter_meta(tmp_path / "adapter")
    assert meta["spec"]["mode"] == mode and meta["note"] == "test"
    from safetensors.torch import load_file

    saved = load_file(str(tmp_path / "adapter" / "adapter.safetensors"))
    assert all(("lora" in k or k.startswith(("projector.", "gate."))) for k in saved)   # no base weight
    assert any(k.startswith("projector.") for k in saved)
    assert any(k.startswith("gate.") for k in saved) == (mode == "ilora")
    fresh, _ = make_teacher(mode, student, seed=99, nonzero_lora=False)   # other random adapters
    assert not torch.allclose(fresh(*args).logits, before)
    load_adapter_weights(fresh, tmp_path / "adapter")
    torch.testing.assert_close(fresh(*args).logits, before, rtol=0, atol=0)
    other, _ = make_teacher("lora" if mode == "ilora" else "ilora", student)
    with pytest.raises(RecdistillError, match="does not fit"):
        load_adapter_weights(other, tmp_path / "adapter")


@pytest.mark.parametrize("mode", ["ilora", "lora"])
def test_kv_cache_scoring_equals_full_prompt_scoring(val_batch, mode):
    batch, enc = val_batch
    teacher, _ = make_teacher(mode)
    for norm in ("sum", "mean") if mode == "ilora" else ("sum",):
        fast = score_candidates(teacher, batch, enc.answers, enc.slot_id, chunk_size=13, norm=norm)
        slow = score_full(teacher, batch, enc.answers, enc.slot_id, chunk_size=20, norm=norm)
        assert fast.shape == (2, 20)
        torch.testing.assert_close(fast, slow, rtol=1e-4, atol=1e-4)


def test_one_prompt_alone_scores_like_in_a_padded_batch(val_batch):
    batch, enc = val_batch
    teacher, _ = make_teacher("ilora")
    together = score_candidates(teacher, batch, enc.answers, enc.slot_id)
    row = 1
    width = int(batch["prompt_mask"][row].sum())
    single = {k: (v[row: row + 1, -width:] if k.startswith("prompt_") else v[row: row + 1]) for k, v in batch.items()}
    alone = score_candidates(teacher, single, enc.answers, enc.slot_id)
    torch.testing.assert_close(alone[0], together[row], rtol=1e-4, atol=1e-4)


def test_tiny_llama_is_seeded_and_frozen():
    a = load_llm(llm_cfg(), CACHE, tokenizer=tokenizer()).model
    b = load_llm(llm_cfg(), CACHE, tokenizer=tokenizer()).model
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    assert not any(p.requires_grad for p in a.parameters())
    c = load_llm(llm_cfg(**{"tiny.seed": 5}), CACHE, tokenizer=tokenizer()).model
    assert not torch.equal(a.model.embed_tokens.weight, c.model.embed_tokens.weight)


def test_llm_knobs_take_effect():
    eager = load_llm(llm_cfg(attn_implementation="eager"), CACHE, tokenizer=tokenizer()).model
    assert eager.config._attn_implementation == "eager"
    ckpt = load_llm(llm_cfg(gradient_checkpointing=True), CACHE, tokenizer=tokenizer()).model
    assert getattr(ckpt, "is_activation_checkpointing", None) or ckpt.is_gradient_checkpointing
    if not torch.cuda.is_available():
        assert load_llm(llm_cfg(), CACHE, tokenizer=tokenizer()).dtype == torch.float32


def test_bad_llm_settings_are_clear_errors(tmp_path):
    cases = [({"attn_implementation": "flash_attention_2"}, "flash_attention_2"),
             ({"attn_implementation": "magic"}, "not valid"),
             ({"dtype": "float8"}, "llm.dtype"),
             ({"source": str(tmp_path / "missing" / "model")}, "does not exist")]
    if not torch.cuda.is_available():
        cases += [({"quantization": "nf4"}, "CUDA"), ({"quantization": "int8"}, "CUDA")]
    for overrides, message in cases:
        with pytest.raises(ConfigError, match=message):
            load_llm(llm_cfg(**overrides), CACHE, tokenizer=tokenizer())
    no_config = tmp_path / "empty"
    no_config.mkdir()
    with pytest.raises(ConfigError, match="without config.json"):
        load_llm(llm_cfg(source=str(no_config)), CACHE)
    encoder_only = tmp_path / "bert"
    encoder_only.mkdir()
    (encoder_only / "config.json").write_text(json.dumps({"model_type": "distilbert", "dim": 32, "n_layers": 1,
                                                         "n_heads": 2, "hidden_dim": 64, "vocab_size": 100}))
    with pytest.raises(ConfigError, match="no causal-LM head"):
        load_llm(llm_cfg(source=str(encoder_only)), CACHE, tokenizer=tokenizer())


def test_local_model_folder_loads(tmp_path):
    model = load_llm(llm_cfg(), CACHE, tokenizer=tokenizer()).model
    model.save_pretrained(tmp_path / "m")
    tokenizer().save_pretrained(tmp_path / "m")
    loaded = load_llm(llm_cfg(source=str(tmp_path / "m")), CACHE)
    ids = torch.tensor([[5, 6, 7]])
    torch.testing.assert_close(loaded.model(ids).logits, model(ids).logits)


def test_min_new_tokens_keeps_eos_out_of_the_first_tokens(val_batch):
    """teacher.eval.min_new_tokens=1 (LLaRA / iLoRA's generate): a model whose first choice is EOS answers
    something instead of nothing."""
    from recdistill.teacher.evaluation import TeacherEvalSettings, generate_answers

    batch, enc = val_batch
    teacher, _ = make_teacher("ilora")
    eos = enc.tokenizer.eos_token_id
    head = teacher.llm.get_output_embeddings()  # a Linear without bias: give it one that makes EOS first
    bias = torch.zeros(head.out_features)
    bias[eos] = 1e4
    head.bias = torch.nn.Parameter(bias, requires_grad=False)
    teacher.eval()
    plain = generate_answers(teacher, batch, enc.tokenizer, 4)
    forced = generate_answers(teacher, batch, enc.tokenizer, 4, min_new_tokens=2)
    assert plain == ["", ""] and all(text for text in forced)
    with pytest.raises(ConfigError, match="teacher.eval.min_new_tokens"):
        TeacherEvalSettings("generate", "sum", 8, max_new_tokens=4, kv_cache=True, min_new_tokens=5)
