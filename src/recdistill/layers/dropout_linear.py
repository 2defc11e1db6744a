"""``linear(dropout(x), weight)`` that keeps ``x`` and a one-byte mask for backward, not a dropped copy.

LoRA applies dropout to the input of every adapter. With autograd's ops, each adapter saves its own
dropped float copy of the input for the weight gradient; in a Llama block q, k and v (and gate, up) see
the same input, so that is three (two) float copies of the same activation per layer. Here every adapter
saves the input tensor itself, which those siblings share, plus its own boolean mask, and rebuilds the
dropped input in backward (one multiply). Masks stay independent per adapter, as in PEFT. Written by
hand because no library does this; ``tests/test_layers.py`` checks values and gradients against
``F.linear(F.dropout(x))`` with the same mask.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from recdistill.layers.dropout import dropout_mask


class _DropoutLinear(torch.autograd.Function):
    # The 1 / (1 - p) scale multiplies the small weight, not the large input: one full-size multiply less.
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, keep: torch.Tensor, scale: float):
        ctx.save_for_backward(x, weight, keep)
        ctx.scale = scale
        return F.linear(x * keep, weight * scale)

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor):
        x, weight, keep = ctx.saved_tensors
        grad_out = grad_out.to(weight.dtype)
        grad_x = grad_weight = None
        if ctx.needs_input_grad[0]:
            grad_x = ((grad_out @ (weight * ctx.scale)) * keep).to(x.dtype)
        if ctx.needs_input_grad[1]:
            kept = (x * keep).to(weight.dtype)
            grad_weight = (grad_out.reshape(-1, grad_out.shape[-1]).t() @ kept.reshape(-1, kept.shape[-1])) * ctx.scale
        return grad_x, grad_weight, None, None


def dropout_linear(x: torch.Tensor, weight: torch.Tensor, p: float, training: bool,
                   keep: torch.Tensor | None = None) -> torch.Tensor:
    """``F.linear(F.dropout(x, p, training), weight)`` (no bias). ``keep`` (a boolean mask shaped like
    ``x``) fixes the mask, for tests; by default one is drawn."""
    if not training or p == 0.0:
        return F.linear(x, weight)
    if keep is None:
        keep = dropout_mask(x, p)
    return _DropoutLinear.apply(x, weight, keep, 1.0 / (1.0 - p))
