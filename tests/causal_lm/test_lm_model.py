"""The GPT model: causality, initial loss, knobs (attention, gradient checkpointing), presets, learning."""

from __future__ import annotations

import math

import pytest
import torch

from recdistill.errors import ConfigError
from recdistill.causal_lm.model import GPT, GPTConfig, preset_config


@pytest.fixture(autouse=True)
def one_thread():
    # Two OpenMP threads on a busy 2-core machine spin against each other (a tiny step measured 25x
    # slower); these models are far too small to gain from a second thread.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def small_cfg(**kw) -> GPTConfig:
    base = dict(vocab_size=257, context_length=32, d_model=32, n_layers=2, n_heads=4, dropout=0.0)
    base.update(kw)
    return GPTConfig(**base)


@pytest.mark.parametrize("attention", ["sdpa", "eager"])
def test_changing_a_later_token_leaves_earlier_logits_unchanged(attention):
    torch.manual_seed(0)
    model = GPT(small_cfg(attention=attention)).eval()
    idx = torch.randint(0, 257, (2, 20))
    changed = idx.clone()
    changed[:, 12] = (changed[:, 12] + 7) % 257
    with torch.no_grad():
        a, b = model(idx), model(changed)
    assert torch.allclose(a[:, :12], b[:, :12], atol=1e-6)
    assert not torch.allclose(a[:, 12:], b[:, 12:], atol=1e-4)


def test_untrained_loss_is_near_log_vocab():
    torch.manual_seed(0)
    model = GPT(small_cfg())
    idx = torch.randint(0, 257, (4, 32))
    with torch.no_grad():
        loss = float(model.loss(idx[:, :-1], idx[:, 1:]))
    assert abs(loss - math.log(257)) < 0.15


def test_sdpa_and_eager_attention_agree():
    torch.manual_seed(0)
    sdpa = GPT(small_cfg(attention="sdpa")).eval()
    eager = GPT(small_cfg(attention="eager")).eval()
    eager.load_state_dict(sdpa.state_dict())
    idx = torch.randint(0, 257, (2, 24))
    with torch.no_grad():
        assert torch.allclose(sdpa(idx), eager(idx), atol=1e-5)


def test_uniform_dropout_path_matches_sdpa_without_dropout_and_drops_with_it():
    """uniform_dropout=True takes the explicit attention path on CPUs when dropout is on: the same
    function as SDPA when nothing is dropped, the right share of attention weights dropped when on."""
    torch.manual_seed(0)
    plain = GPT(small_cfg())
    fast = GPT(small_cfg(uniform_dropout=True))
    fast.load_state_dict(plain.state_dict())
    idx = torch.randint(0, 257, (2, 24))
    for block in fast.blocks:   # dropout on in the path choice, but every mask keeps everything
        block.attn.dropout = 0.5
        block.attn.attn_dropout.p = 0.0
    assert torch.allclose(plain.train()(idx), fast.train()(idx), atol=1e-5)
    fast.blocks[0].attn.attn_dropout.p = 0.5
    seen = {}
    fast.blocks[0].attn.attn_dropout.register_forward_hook(lambda m, i, o: seen.update(w=i[0], out=o))
    fast(idx)
    weights, dropped = seen["w"], seen["out"]
    allowed = weights > 0                       # the causal part of the softmax weights
    share = ((dropped == 0) & allowed).sum() / allowed.sum()
    assert abs(float(share) - 0.5) < 0.05
    assert torch.allclose(dropped[(dropped != 0)], 2 * weights[(dropped != 0)])
    assert torch.all(weights.triu(diagonal=1) == 0)  # no query looks at a later position


def test_gradient_checkpointing_recomputes_blocks_and_keeps_gradients():
    torch.manual_seed(0)
    plain = GPT(small_cfg())
    ckpt = GPT(small_cfg(gradient_checkpointing=True))
    ckpt.load_state_dict(plain.state_dict())
    calls = []
    ckpt.blocks[0].register_forward_pre_hook(lambda *a: calls.append(1))
    idx = torch.randint(0, 257, (2, 32))
    for model in (plain, ckpt):
        model.loss(idx[:, :-1], idx[:, 1:]).backward()
    assert len(calls) == 2  # forward, then again during backward: the knob took effect
    for (name, p), q in zip(plain.named_parameters(), ckpt.parameters()):
        assert torch.allclose(p.grad, q.grad, atol=1e-6), name


def test_head_is_tied_to_the_token_embedding():
    model = GPT(small_cfg())
    assert model.head.weight is model.tok_emb.weight


@pytest.mark.parametrize("preset,expected_millions", [("small", 124), ("medium", 354), ("large", 774)])
def test_presets_have_gpt2_shapes(preset, expected_millions):
    with torch.device("meta"):  # shapes only, no memory
        model = GPT(preset_config(preset, vocab_size=50257))
    assert round(model.num_parameters() / 1e6) == pytest.approx(expected_millions, abs=1)


def test_bad_shapes_and_presets_are_clear_errors():
    with pytest.raises(ConfigError, match="unknown lm.preset='huge'.*tiny, small, medium, large"):
        preset_config("huge", vocab_size=257)
    with pytest.raises(ConfigError, match="not divisible"):
        small_cfg(d_model=30, n_heads=4)
    with pytest.raises(ConfigError, match="lm.attention"):
        small_cfg(attention="flash")
    with pytest.raises(ValueError, match="longer than the context length"):
        GPT(small_cfg())(torch.zeros(1, 33, dtype=torch.long))


def test_a_few_steps_on_a_tiny_corpus_lower_the_loss():
    torch.manual_seed(0)
    data = torch.tensor(list(b"to be or not to be, that is the question. " * 20))
    model = GPT(small_cfg())
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)
    x = torch.stack([data[i:i + 32] for i in range(0, 320, 16)])
    y = torch.stack([data[i + 1:i + 33] for i in range(0, 320, 16)])
    with torch.no_grad():
        first = float(model.loss(x, y))
    for _ in range(30):
        opt.zero_grad(set_to_none=True)
        model.loss(x, y).backward()
        opt.step()
    with torch.no_grad():
        assert float(model.loss(x, y)) < first - 1.5


def test_generate_appends_tokens_and_greedy_is_deterministic():
    torch.manual_seed(0)
    model = GPT(small_cfg()).eval()
    start = torch.tensor([[1, 2, 3]])
    a = model.generate(start, 40, temperature=0)  # longer than the context: the window is cropped
    b = model.generate(start, 40, temperature=0)
    assert a.shape == (1, 43) and torch.equal(a, b)
