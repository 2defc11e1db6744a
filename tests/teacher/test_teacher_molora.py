"""The mixture-of-LoRA layer against PEFT's LoRA and against the explicit sum over experts."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn

from recdistill.errors import ConfigError
from recdistill.teacher.molora import GateState, MoLoRALinear, inject_molora
from teacher_fixtures import molora_config


class TwoLayers(nn.Module):
    def __init__(self):
        super().__init__()
        self.q_proj = nn.Linear(12, 10)
        self.up_proj = nn.Linear(10, 6)

    def forward(self, x):
        return self.up_proj(torch.relu(self.q_proj(x)))


def expert_delta(layer: MoLoRALinear, x: torch.Tensor, expert: int) -> torch.Tensor:
    """One expert's update ``B_k A_k x * scaling`` (no gate, no dropout), written out from the weights."""
    lo, hi = expert * layer.config.expert_rank, (expert + 1) * layer.config.expert_rank
    a = layer.lora_A.weight[lo:hi]
    b = layer.lora_B.weight[:, lo:hi]
    return (x.to(a.dtype) @ a.t() @ b.t()) * layer.scaling


def _layer(r=8, k=4, seed=0):
    torch.manual_seed(seed)
    gate = GateState(k)
    layer = MoLoRALinear(nn.Linear(12, 10), molora_config(r=r, num_experts=k, dropout=0.0), gate)
    nn.init.normal_(layer.lora_B.weight, std=0.5)
    return layer, gate


def test_rank_gated_mixture_equals_sum_over_experts():
    layer, gate = _layer()
    x = torch.randn(3, 5, 12)
    weights = torch.softmax(torch.randn(3, 4), dim=-1)
    gate.set(weights)
    expected = layer.base_layer(x) + sum(weights[:, k, None, None] * expert_delta(layer, x, k) for k in range(4))
    torch.testing.assert_close(layer(x), expected, rtol=1e-5, atol=1e-5)


# iLoRA's rule makes each expert a rank-r/K LoRA with the same alpha (32 / 2 = 16); the standard rule
# scales by alpha / r (32 / 8 = 4), which a rank-2 PEFT LoRA matches with alpha 8.
@pytest.mark.parametrize("expert,rule,peft_alpha", [(0, "ilora", 32.0), (3, "ilora", 32.0), (3, "standard", 8.0)])
def test_one_hot_gate_equals_plain_peft_lora_with_that_expert(expert, rule, peft_alpha):
    from peft import LoraConfig, get_peft_model

    torch.manual_seed(0)
    base = TwoLayers()
    config = molora_config(dropout=0.0, target_modules=("q_proj", "up_proj"), scaling_rule=rule)
    mixture = copy.deepcopy(base)
    gate = GateState(4)
    inject_molora(mixture, config, gate)
    for m in mixture.modules():
        if isinstance(m, MoLoRALinear):
            nn.init.normal_(m.lora_B.weight, std=0.5)
    peft_model = get_peft_model(copy.deepcopy(base), LoraConfig(r=2, lora_alpha=peft_alpha, lora_dropout=0.0,
                                                                target_modules=["q_proj", "up_proj"]))
    lo, hi = 2 * expert, 2 * expert + 2
    with torch.no_grad():
        for name in ("q_proj", "up_proj"):
            ours = getattr(mixture, name)
            theirs = getattr(peft_model.base_model.model, name)
            theirs.lora_A["default"].weight.copy_(ours.lora_A.weight[lo:hi])
            theirs.lora_B["default"].weight.copy_(ours.lora_B.weight[:, lo:hi])
    x = torch.randn(4, 7, 12)
    gate.set(torch.nn.functional.one_hot(torch.full((4,), expert), 4).float())
    torch.testing.assert_close(mixture(x), peft_model(x), rtol=1e-5, atol=1e-5)
    assert not torch.allclose(mixture(x), base(x))   # the adapter does something


def test_scaling_rule_sets_the_update_scale_and_refuses_unknown_rules():
    assert molora_config().scaling == 16.0                              # iLoRA's default
    assert molora_config(scaling_rule="standard").scaling == 4.0
    assert molora_config(num_experts=1).scaling == molora_config(num_experts=1, scaling_rule="standard").scaling == 4.0
    x = torch.randn(2, 3, 12)
    outs = {}
    for rule in ("ilora", "standard"):
        torch.manual_seed(0)
        gate = GateState(4)
        layer = MoLoRALinear(nn.Linear(12, 10), molora_config(dropout=0.0, scaling_rule=rule), gate)
        nn.init.normal_(layer.lora_B.weight, std=0.5)
        gate.set(torch.full((2, 4), 0.25))
        outs[rule] = layer(x) - layer.base_layer(x)
    torch.testing.assert_close(outs["ilora"], 4 * outs["standard"])       # the update itself is 4x larger
    with pytest.raises(ConfigError, match="teacher.lora.scaling"):
        molora_config(scaling_rule="sqrt")


def test_gate_is_per_sample():
    layer, gate = _layer()
    x = torch.randn(1, 5, 12).expand(2, 5, 12)
    gate.set(torch.tensor([[1.0, 0, 0, 0], [0, 0, 0, 1.0]]))
    out = layer(x)
    assert not torch.allclose(out[0], out[1])


def test_fresh_layer_equals_base_and_only_lora_trains():
    torch.manual_seed(0)
    model = TwoLayers()
    reference = copy.deepcopy(model)
    gate = GateState(4)
    names = inject_molora(model, molora_config(target_modules=("q_proj", "up_proj")), gate)
    assert names == ["q_proj", "up_proj"]
    gate.set(torch.full((2, 4), 0.25))
    x = torch.randn(2, 3, 12)
    torch.testing.assert_close(model(x), reference(x))   # B starts at zero
    trainable = sorted(n for n, p in model.named_parameters() if p.requires_grad)
    assert trainable == ["q_proj.lora_A.weight", "q_proj.lora_B.weight", "up_proj.lora_A.weight", "up_proj.lora_B.weight"]


def test_bad_settings_are_clear_errors():
    with pytest.raises(ConfigError, match="multiple"):
        molora_config(r=6, num_experts=4)
    with pytest.raises(ConfigError, match="matches no linear layer"):
        inject_molora(TwoLayers(), molora_config(target_modules=("nope",)), GateState(4))
    layer, gate = _layer()
    with pytest.raises(RuntimeError, match="before the gate was set"):
        layer(torch.randn(2, 3, 12))
    gate.set(torch.full((3, 4), 0.25))
    with pytest.raises(RuntimeError, match="batch of 2"):
        layer(torch.randn(2, 3, 12))


def test_uniform_dropout_off_uses_torch_dropout_on_the_adapter_input():
    """efficiency.uniform_dropout=false: F.dropout then the product (the PEFT-like baseline); on: the
    byte-mask dropout_linear. Each matches its own form under the same random draws."""
    import torch.nn.functional as F

    from recdistill.layers.dropout_linear import dropout_linear

    torch.manual_seed(0)
    base = nn.Linear(12, 10)
    x = torch.randn(3, 5, 12)
    weights = torch.softmax(torch.randn(3, 4), dim=-1)
    for uniform in (False, True):
        gate = GateState(4)
        gate.set(weights)
        layer = MoLoRALinear(base, molora_config(dropout=0.5), gate, uniform_dropout=uniform).train()
        nn.init.normal_(layer.lora_B.weight, std=0.5)
        torch.manual_seed(7)
        got = layer(x)
        torch.manual_seed(7)
        if uniform:
            h = dropout_linear(x, layer.lora_A.weight, 0.5, True)
        else:
            h = F.linear(F.dropout(x, 0.5, True), layer.lora_A.weight)
        g = (weights.repeat_interleave(2, dim=1) * layer.scaling)[:, None, :]
        torch.testing.assert_close(got, base(x) + layer.lora_B(h * g), rtol=1e-5, atol=1e-5)
