"""The two small trained parts that connect the student to the LLM: the projector and the gate."""

from __future__ import annotations

import torch
from torch import nn


class Projector(nn.Module):
    """Student item embedding -> LLM input embedding: Linear, GELU, Linear (LLaRA / iLoRA's MLP
    projector)."""

    def __init__(self, student_size: int, llm_size: int):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(student_size, llm_size), nn.GELU(), nn.Linear(llm_size, llm_size))

    def forward(self, item_embeddings: torch.Tensor) -> torch.Tensor:
        return self.net(item_embeddings)


class Gate(nn.Module):
    """The student's user representation -> a softmax over the K experts (iLoRA's gating network);
    one gate drives every mixture-of-LoRA layer."""

    def __init__(self, student_size: int, num_experts: int):
        super().__init__()
        self.linear = nn.Linear(student_size, num_experts)

    def forward(self, user_representation: torch.Tensor) -> torch.Tensor:
        return torch.softmax(self.linear(user_representation), dim=-1)
