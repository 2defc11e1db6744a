"""A linear layer with a gated mixture of LoRA experts on top of a frozen base layer.

Expert k owns ranks ``[k*r/K, (k+1)*r/K)`` of one rank-r pair ``A [r, in]``, ``B [out, r]``. The mixture

    sum_k g_k * B_k A_k x  ==  B (g_rank * (A x)),   g_rank = repeat(g, r/K)

so gating the rank dimension costs exactly one rank-r LoRA, instead of K adapter calls.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from recdistill.layers.dropout_linear import dropout_linear
from recdistill.teacher.molora.config import MoLoRAConfig


class GateState:
    """The per-sample expert weights ``[B, K]`` shared by every layer (one gate for the whole model).
    The teacher sets it before each forward; it stays set so that gradient checkpointing's recomputation
    in backward sees the same weights."""

    def __init__(self, num_experts: int):
        self.num_experts = num_experts
        self.weights: torch.Tensor | None = None

    def set(self, weights: torch.Tensor) -> None:
        if weights.dim() != 2 or weights.shape[1] != self.num_experts:
            raise ValueError(f"gate weights must be [batch, {self.num_experts}], got {tuple(weights.shape)}")
        self.weights = weights


class MoLoRALinear(nn.Module):
    """Wraps an ``nn.Linear`` (or a bitsandbytes 4/8-bit subclass of it); the base stays frozen."""

    def __init__(self, base: nn.Linear, config: MoLoRAConfig, gate: GateState, uniform_dropout: bool = True):
        super().__init__()
        self.base_layer = base
        # efficiency.uniform_dropout: the byte-mask dropout_linear (on) or F.dropout then the product (off)
        self.uniform_dropout = bool(uniform_dropout)
        self.config = config
        self.gate = gate
        self.lora_A = nn.Linear(base.in_features, config.r, bias=False)
        self.lora_B = nn.Linear(config.r, base.out_features, bias=False)
        self.scaling = config.scaling
        self.reset_lora()

    def reset_lora(self) -> None:
        # As LoRA and PEFT: A random, B zero, so the wrapped model starts equal to the base model.
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)

    def rank_weights(self, batch: int) -> torch.Tensor:
        weights = self.gate.weights
        if weights is None:
            raise RuntimeError("MoLoRALinear called before the gate was set (ILoRATeacher sets it per batch)")
        if weights.shape[0] != batch:
            raise RuntimeError(f"gate holds {weights.shape[0]} rows but the layer got a batch of {batch}")
        return weights.repeat_interleave(self.config.expert_rank, dim=1)  # [B, r]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        result = self.base_layer(x)
        lora_dtype = self.lora_A.weight.dtype
        # dropout on the adapter's input; saves x itself (shared by q, k, v) and a byte mask, see dropout_linear
        if self.uniform_dropout:
            h = dropout_linear(x.to(lora_dtype), self.lora_A.weight, self.config.dropout, self.training)  # [B, T, r]
        else:
            h = self.lora_A(F.dropout(x.to(lora_dtype), self.config.dropout, self.training))
        # the LoRA scaling rides on the [B, r] gate, not on the [B, T, out] update: one full-size multiply less
        g = (self.rank_weights(x.shape[0]) * self.scaling).to(h.dtype)
        h = h * g.view(g.shape[0], *([1] * (h.dim() - 2)), g.shape[1])
        return result + self.lora_B(h).to(result.dtype)
