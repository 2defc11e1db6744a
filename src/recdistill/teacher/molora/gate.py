"""The gates (routers) that turn the student's user representation into a softmax over the K experts.

``linear``: one linear layer and a softmax (the simplest gate; the ``Dense`` gating of iLoRA's code).
``conv``: the router iLoRA trains with ``--router share``: the user vector read as a one-channel signal
of length H (the student's hidden size), a small residual 1-D convolutional net over it (16, 32 and 64
channels, three blocks each, batch norm), average pooling over length, then a linear layer and a softmax.
Written here from the paper's description and a reading of their code; torchvision has only 2-D ResNets.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from recdistill.errors import ConfigError
from recdistill.teacher.bridge import Gate as LinearGate

GATES = ("linear", "conv")


class ResidualBlock1d(nn.Module):
    """Two 3-wide convolutions with batch norm and a shortcut. When the block halves the length and
    widens the channels, the shortcut subsamples and zero-pads the channels (no parameters), as in
    the CIFAR ResNets that iLoRA's router follows."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv1d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm1d(out_channels)
        self.conv2 = nn.Conv1d(out_channels, out_channels, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm1d(out_channels)
        self.stride, self.extra = stride, out_channels - in_channels

    def shortcut(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride == 1 and self.extra == 0:
            return x
        x = x[:, :, :: self.stride]
        return F.pad(x, (0, 0, self.extra // 2, self.extra - self.extra // 2))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ConvGate(nn.Module):
    """iLoRA's residual 1-D conv router: ``[B, H]`` user vectors -> ``[B, K]`` expert weights."""

    def __init__(self, num_experts: int, widths=(16, 32, 64), blocks_per_stage: int = 3):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv1d(1, widths[0], 3, padding=1, bias=False), nn.BatchNorm1d(widths[0]),
                                  nn.ReLU())
        layers, channels = [], widths[0]
        for stage, width in enumerate(widths):
            for block in range(blocks_per_stage):
                stride = 2 if stage > 0 and block == 0 else 1
                layers.append(ResidualBlock1d(channels, width, stride))
                channels = width
        self.blocks = nn.Sequential(*layers)
        self.linear = nn.Linear(channels, num_experts)

    def forward(self, user_representation: torch.Tensor) -> torch.Tensor:
        x = self.blocks(self.stem(user_representation.unsqueeze(1)))   # [B, C, L]
        return torch.softmax(self.linear(x.mean(dim=-1)), dim=-1)


def build_gate(kind: str, student_size: int, num_experts: int) -> nn.Module:
    if kind == "linear":
        return LinearGate(student_size, num_experts)
    if kind == "conv":
        return ConvGate(num_experts)
    raise ConfigError(f"teacher.gate={kind!r} is not valid; choose one of: {', '.join(GATES)}")
