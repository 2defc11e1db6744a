"""iLoRA-as-published options take effect: the conv router, the gate's input window, the optimizer's
groups (router learning-rate share, weight decay on projector and gate) and LLaRA's curriculum."""

from __future__ import annotations

import pytest
import torch
from omegaconf import OmegaConf

from recdistill.config import compose
from recdistill.data.prepared import load_prepared
from recdistill.teacher.prompt_encoder import PromptEncoder, load_templates
from recdistill.errors import ConfigError
from recdistill.teacher.checkpoint import load_adapter_weights, save_adapter
from recdistill.teacher.data import PromptCollator, PromptDataset, train_samples
from recdistill.teacher.model import TEXT_ONLY_SLOT
from recdistill.teacher.molora.gate import ConvGate, LinearGate
from recdistill.teacher.optim import build_teacher_optimizer, param_groups
from teacher_fixtures import (CACHE, llm_cfg, make_curriculum, make_student, molora_config, optim_settings,
                                   prompt_settings, tokenizer)


def build(gate="conv", window=None, student=None, seed=1):
    from recdistill.teacher.build import build_teacher
    from recdistill.teacher.model import TeacherSpec

    torch.manual_seed(seed)
    spec = TeacherSpec("ilora", molora_config(dropout=0.0), gate=gate, gate_window=window)
    teacher, _ = build_teacher(llm_cfg(), spec, student or make_student(), CACHE, tokenizer=tokenizer())
    return teacher


@pytest.fixture(scope="module")
def train_batch(tmp_path_factory):
    from conftest import make_tiny_prepared

    data = load_prepared(make_tiny_prepared(tmp_path_factory.mktemp("data") / "tiny"))
    enc = PromptEncoder(tokenizer(), data.titles, load_templates())
    ds = PromptDataset(train_samples(data, "last", 1), enc, data.num_items, prompt_settings(),
                       "train", True)
    return PromptCollator(enc.slot_id, 10, with_prompts=False)([ds[i] for i in range(4)])


def test_config_chooses_the_gate_and_the_window():
    from recdistill.recipes.teacher_settings import teacher_spec

    cfg = compose("teacher", [])
    spec = teacher_spec(cfg.teacher)
    assert spec.gate == "conv" and spec.gate_window == 10        # the paper's defaults
    spec = teacher_spec(compose("teacher", ["teacher.gate=linear", "teacher.gate_window=null"]).teacher)
    assert spec.gate == "linear" and spec.gate_window is None
    with pytest.raises(ConfigError, match="teacher.gate"):
        teacher_spec(OmegaConf.merge(cfg.teacher, {"gate": "mlp"}))


def test_conv_gate_is_iloras_residual_router():
    assert isinstance(build("linear").gate, LinearGate)
    teacher = build("conv")
    gate = teacher.gate
    assert isinstance(gate, ConvGate)
    convs = [m for m in gate.modules() if isinstance(m, torch.nn.Conv1d)]
    assert len(convs) == 1 + 9 * 2                                # stem + 3 stages x 3 blocks x 2 convs
    assert gate.linear.in_features == 64                          # the last stage's channels, as iLoRA's
    weights = gate(torch.randn(5, 16))
    assert weights.shape == (5, 4)
    torch.testing.assert_close(weights.sum(-1), torch.ones(5))
    assert any(n.startswith("gate.blocks") for n, p in teacher.named_parameters() if p.requires_grad)


def test_gate_window_limits_what_the_gate_reads():
    student = make_student()
    seq = torch.randint(1, 41, (3, 10))
    older_changed = seq.clone()
    older_changed[:, :6] = torch.randint(1, 41, (3, 6))
    windowed = build("linear", window=4, student=student)
    torch.testing.assert_close(windowed.expert_weights(seq), windowed.expert_weights(older_changed))
    whole = build("linear", window=None, student=student)
    assert not torch.allclose(whole.expert_weights(seq), whole.expert_weights(older_changed))
    # the window equals feeding only the last 4 items
    torch.testing.assert_close(windowed.expert_weights(seq), whole.expert_weights(seq[:, -4:]))


def test_conv_gate_batch_norm_statistics_travel_with_the_adapter(tmp_path):
    teacher = build("conv", window=4)
    teacher.train()
    teacher.expert_weights(torch.randint(1, 41, (8, 10)))          # training mode updates the running stats
    teacher.eval()
    seq = torch.randint(1, 41, (3, 10))
    before = teacher.expert_weights(seq)
    save_adapter(teacher, tmp_path / "adapter", {})
    fresh = build("conv", window=4, seed=2).eval()
    assert not torch.allclose(fresh.expert_weights(seq), before)
    load_adapter_weights(fresh, tmp_path / "adapter")
    torch.testing.assert_close(fresh.expert_weights(seq), before)


def test_optimizer_groups_follow_ilora():
    teacher = build("conv")
    settings = optim_settings(lr=8e-4, weight_decay=0.0, bridge_weight_decay=1e-5, router_lr_scale=0.3)
    groups = {g["name"]: g for g in param_groups(teacher, settings)}
    assert groups["gate"]["lr"] == pytest.approx(2.4e-4) and groups["projector"]["lr"] == pytest.approx(8e-4)
    assert groups["gate"]["weight_decay"] == groups["projector"]["weight_decay"] == 1e-5
    assert groups["lora"]["weight_decay"] == 0.0
    counted = sum(len(g["params"]) for g in groups.values())
    assert counted == sum(1 for p in teacher.parameters() if p.requires_grad)
    assert all(p.requires_grad for p in groups["lora"]["params"])
    opt = build_teacher_optimizer(teacher, settings)
    assert [g["lr"] for g in opt.param_groups] == [g["lr"] for g in param_groups(teacher, settings)]
    with pytest.raises(ConfigError, match="router_lr_scale"):
        optim_settings(lr=1e-3, router_lr_scale=0)


def test_coupled_weight_decay_is_adam_with_l2_in_the_gradient():
    """train.weight_decay_form=coupled: iLoRA's torch.optim.Adam, whose decay enters the gradient (and so is
    normalised by Adam: a parameter with no loss gradient moves by about lr), where AdamW shrinks it by
    lr x decay x value."""
    teacher = build("linear")
    assert type(build_teacher_optimizer(teacher, optim_settings())) is torch.optim.AdamW
    coupled = build_teacher_optimizer(teacher, optim_settings(weight_decay_form="coupled"))
    assert type(coupled) is torch.optim.Adam
    moved = {}
    for form in ("decoupled", "coupled"):
        p = torch.nn.Parameter(torch.full((3,), 2.0))
        opt = build_teacher_optimizer(teacher, optim_settings(weight_decay_form=form))
        opt = type(opt)([{"params": [p], "lr": 0.1, "weight_decay": 0.01}])
        p.grad = torch.zeros(3)
        opt.step()
        moved[form] = float(2.0 - p[0])
    assert moved["decoupled"] == pytest.approx(0.1 * 0.01 * 2.0, rel=1e-4) and moved["coupled"] == pytest.approx(0.1, rel=1e-3)
    with pytest.raises(ConfigError, match="weight_decay_form"):
        optim_settings(weight_decay_form="l2")


def test_curriculum_share_grows_to_one_and_the_draw_is_seeded():
    c = make_curriculum("llara", seed=3)
    shares = [c.hybrid_share(s, 100) for s in range(100)]
    assert shares[0] == pytest.approx(0.01) and shares[-1] == 1.0 and shares == sorted(shares)
    assert make_curriculum("llara", ramp=0.5).hybrid_share(49, 100) == 1.0
    assert make_curriculum("none").hybrid_share(0, 100) == 1.0
    users, positions = list(range(1, 2001)), [5] * 2000
    mask = c.hybrid_mask(users, positions, epoch=0, step=29, total_steps=100)
    assert torch.equal(mask, make_curriculum("llara", seed=3).hybrid_mask(users, positions, 0, 29, 100))
    assert not torch.equal(mask, make_curriculum("llara", seed=4).hybrid_mask(users, positions, 0, 29, 100))
    assert 0.25 < mask.float().mean() < 0.35                        # share 0.30
    with pytest.raises(ConfigError, match="teacher.curriculum"):
        make_curriculum("linear")


def test_a_batch_curriculum_draws_once_per_step():
    """teacher.curriculum_unit=batch (LLaRA's collate): a whole batch is hybrid or text-only, seeded by the
    step, hybrid on about the share of the steps."""
    c = make_curriculum("llara", seed=3, unit="batch")
    users, positions = list(range(1, 9)), [5] * 8
    masks = [c.hybrid_mask(users, positions, epoch=0, step=s, total_steps=10_000) for s in range(2999, 3999)]
    assert all(bool(m.all()) or not bool(m.any()) for m in masks)           # all or nothing
    assert 0.25 < sum(bool(m.all()) for m in masks) / len(masks) < 0.45     # share 0.30 to 0.40
    assert torch.equal(masks[7], make_curriculum("llara", seed=3, unit="batch").hybrid_mask(users, positions, 0, 3006, 10_000))
    with pytest.raises(ConfigError, match="teacher.curriculum_unit"):
        make_curriculum("llara", unit="step")


def test_text_only_samples_keep_no_item_embedding_and_leave_the_projector_frozen(train_batch):
    c = make_curriculum("llara", seed=0)
    text_batch, mask = c.apply(train_batch, epoch=0, step=0, total_steps=10_000)   # share 1e-4
    assert not mask.any() and int((text_batch["item_slots"] > 0).count_nonzero()) == 0
    marked = text_batch["item_slots"] == TEXT_ONLY_SLOT                             # the slots, marked text-only
    assert torch.equal(marked, train_batch["item_slots"] > 0)
    assert int(train_batch["item_slots"].count_nonzero()) > 0                      # the input is untouched
    teacher = build("linear").train()
    opt = build_teacher_optimizer(teacher, optim_settings(lr=1e-2, bridge_weight_decay=0.1))
    projector = [p.detach().clone() for p in teacher.projector.parameters()]
    lora = next(p for n, p in teacher.named_parameters() if "lora_B" in n)  # B starts at zero, A random
    lora_before = lora.detach().clone()
    b = text_batch
    teacher(b["input_ids"], b["attention_mask"], b["item_slots"], b["student_seq"], labels=b["labels"]).loss.backward()
    opt.step()
    assert all(torch.equal(a, p) for a, p in zip(projector, teacher.projector.parameters()))
    assert not torch.equal(lora_before, lora)
    # hybrid prompts do train the projector
    opt.zero_grad()
    b = train_batch
    teacher(b["input_ids"], b["attention_mask"], b["item_slots"], b["student_seq"], labels=b["labels"]).loss.backward()
    opt.step()
    assert not all(torch.equal(a, p) for a, p in zip(projector, teacher.projector.parameters()))


def test_text_only_slots_show_the_pad_token_or_their_fixed_placeholder_row(train_batch):
    """teacher.curriculum_placeholder: pad (ours) leaves the pad token's embedding in a text-only slot;
    random_row shows LLaRA's [PH]: one fixed row, N(0, initializer_range^2), the same after a restart."""
    teacher = build("linear").eval()
    text_batch, _ = make_curriculum("llara").apply(train_batch, epoch=0, step=0, total_steps=10_000)
    slots, ids = text_batch["item_slots"], text_batch["input_ids"]
    marked = slots == TEXT_ONLY_SLOT
    pad_row = teacher.embedding_layer.weight[int(ids[marked][0])]
    assert torch.equal(teacher.embed(ids, slots)[marked], pad_row.expand(int(marked.sum()), -1))
    c = make_curriculum("llara", placeholder="random_row")
    size, std = teacher.base_config.hidden_size, teacher.base_config.initializer_range
    row = c.text_only_row(size, std)
    assert torch.equal(row, make_curriculum("llara", placeholder="random_row").text_only_row(size, std))  # resumable
    assert not torch.equal(row, make_curriculum("llara", seed=5).text_only_row(size, std))
    assert 0.5 * std < float(row.std()) < 1.5 * std
    teacher.use_text_only_row(row)
    shown = teacher.embed(ids, slots)
    assert torch.equal(shown[marked], row.expand(int(marked.sum()), -1))
    assert torch.equal(shown[~marked], teacher.embedding_layer(ids)[~marked])        # every other token as before
    hybrid = teacher.embed(train_batch["input_ids"], train_batch["item_slots"])      # hybrid prompts: items
    assert not torch.equal(hybrid[marked], row.expand(int(marked.sum()), -1))
    with pytest.raises(ConfigError, match="teacher.curriculum_placeholder"):
        make_curriculum("llara", placeholder="ph")


def test_an_epoch_counter_restarts_the_share_every_epoch_as_their_code_runs():
    """teacher.curriculum_counter=epoch: the share restarts at each epoch and ends it at 1 / epochs (LLaRA's
    workers each count their own collate calls from 1 again); run (ours) grows it to 1 over the run."""
    run, epoch = make_curriculum("llara"), make_curriculum("llara", counter="epoch")
    total, per_epoch = 500, 100                                                    # 5 epochs of 100 steps
    assert run.hybrid_share(299, total, 2, per_epoch) == pytest.approx(0.6)
    assert epoch.hybrid_share(299, total, 2, per_epoch) == pytest.approx(0.2)     # the end of epoch 3: 1 / 5
    assert epoch.hybrid_share(300, total, 3, per_epoch) == pytest.approx(1 / 500)  # epoch 4 starts again
    assert epoch.hybrid_share(0, total, 0, per_epoch) == run.hybrid_share(0, total, 0, per_epoch)
    users, positions = list(range(1, 201)), [4] * 200
    late = epoch.hybrid_mask(users, positions, epoch=4, step=499, total_steps=total, steps_per_epoch=per_epoch)
    assert 0.1 < late.float().mean() < 0.3                                          # share 0.2, not 1
    with pytest.raises(ConfigError, match="teacher.curriculum_counter"):
        make_curriculum("llara", counter="worker")


def test_paper_profile_sets_iloras_recipe_for_the_teacher():
    from recdistill.recipes.teacher_settings import curriculum, teacher_optim_settings, teacher_spec

    profile = compose("pipeline", ["profile=paper"]).profile
    cfg = compose("teacher", list(profile["all"]) + list(profile.teacher))
    assert int(cfg.train.batch_size) * int(cfg.efficiency.accumulate_grad_batches) == 128   # 8 x 16
    assert cfg.train.max_epochs == 5 and cfg.teacher.eval.protocol == "llara"
    spec = teacher_spec(cfg.teacher)
    assert (spec.mode, spec.gate, spec.gate_window, spec.lora.r, spec.lora.num_experts) == ("ilora", "conv", 10, 8, 4)
    opt = teacher_optim_settings(cfg)
    assert (opt.lr, opt.router_lr_scale, opt.bridge_weight_decay, opt.weight_decay) == (8e-4, 0.3, 1e-5, 0.0)
    assert opt.weight_decay_form == "coupled" and cfg.efficiency.warmup_start_ratio == 0.01
    c = curriculum(cfg.teacher)
    assert (c.kind, c.unit, c.counter, c.placeholder) == ("llara", "batch", "epoch", "random_row")
    assert cfg.teacher.prompt.answer_form == "published" and cfg.teacher.prompt.template_unit == "batch"
    assert cfg.teacher.data.min_history == 3 and cfg.teacher.eval.min_new_tokens == 1


def test_settings_that_would_be_ignored_together_are_refused():
    from recdistill.recipes.teacher_settings import validate_teacher_config

    validate_teacher_config(compose("teacher", ["teacher=lora"]))             # lora's own defaults pass
    with pytest.raises(ConfigError, match="teacher.gate_window=10 have no effect with teacher.mode=lora"):
        validate_teacher_config(compose("teacher", ["teacher=lora", "teacher.gate_window=10"]))
    with pytest.raises(ConfigError, match="teacher.gate=conv"):
        validate_teacher_config(compose("teacher", ["teacher=lora", "teacher.gate=conv"]))
    with pytest.raises(ConfigError, match="curriculum=llara with teacher.prompt.candidates=tokens"):
        validate_teacher_config(compose("teacher", ["teacher.prompt.candidates=tokens"]))
    validate_teacher_config(compose("teacher", ["teacher.prompt.candidates=tokens", "teacher.curriculum=none"]))
    with pytest.raises(ConfigError, match="teacher.curriculum_counter=epoch have no effect with teacher.curriculum=none"):
        validate_teacher_config(compose("teacher", ["teacher.curriculum=none", "teacher.curriculum_counter=epoch"]))


def test_min_history_keeps_only_prompts_with_that_many_items(tmp_path):
    """teacher.data.min_history=3 (LLaRA / iLoRA's len_seq >= 3): no training prompt shows fewer items."""
    from conftest import make_tiny_prepared

    data = load_prepared(make_tiny_prepared(tmp_path / "tiny"))
    every = train_samples(data, "all", 1)
    three = train_samples(data, "all", 1, min_history=3)
    assert min(len(h) for h in every.histories) == 1 and min(len(h) for h in three.histories) == 3
    assert len(every.users) - len(three.users) == sum(min(2, len(data.train[int(u)]) - 1) for u in data.users())
    with pytest.raises(ConfigError, match="teacher.data.min_history"):
        train_samples(data, "all", 1, min_history=0)
