"""Cross-entropy over the full catalogue without materialising the ``[P, N]`` logits.

The student's default loss is a softmax over every item at every position of the batch: with ML-100K's
defaults that is a ``[~5,100, 1,682]`` float matrix per step, written by the output product, read and
written again by ``log_softmax``, and again by its backward (plus a zero-filled gradient). On a CPU those
passes over 34 MB tensors, and the page faults of allocating them anew each step, cost more than the
products themselves.

:func:`linear_cross_entropy` walks the positions in chunks small enough to stay in cache and, for each
chunk, computes the logits, the loss and *its gradient* at once (``softmax - one_hot``), turning it into
the gradients of the hidden states and of the item table straight away. Backward only scales the stored
gradients by the incoming one. Written by hand because no library offers it on CPUs (Liger-Kernel's fused
linear cross-entropy is Triton, GPU only). ``tests/test_layers.py`` checks it against
``F.cross_entropy`` for the loss and both gradients; ``benchmarks/student/student_speed.py`` measures the epoch.

With the gradients computed in forward, the function trades memory for a second backward: calling
``backward`` twice through it (``retain_graph=True``) reuses the same stored gradients, which is correct.
"""

from __future__ import annotations

import torch

DEFAULT_CHUNK = 512  # positions per chunk: 512 x 1,682 floats = 3.4 MB, about what a core's cache holds


class _LinearCrossEntropy(torch.autograd.Function):
    @staticmethod
    def forward(ctx, hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor, chunk: int, extra,
                column_bias):
        positions = len(targets)
        need_hidden, need_weight = ctx.needs_input_grad[0], ctx.needs_input_grad[1]
        ctx.hidden_dtype, ctx.weight_dtype = hidden.dtype, weight.dtype
        # float32 throughout (as the plain loss does with .float()), also under bf16/fp16 autocast
        with torch.autocast(hidden.device.type, enabled=False):
            hidden32, weight32 = hidden.float(), weight.float()
            grad_hidden = torch.empty_like(hidden32) if need_hidden else None
            grad_weight = torch.zeros_like(weight32) if need_weight else None
            total = hidden32.new_zeros(())
            total_extra = hidden32.new_zeros(())
            for start in range(0, positions, chunk):
                h, t = hidden32[start:start + chunk], targets[start:start + chunk]
                logits = h @ weight32.t()
                if extra is not None:  # another loss on the same logits: its value and d/d logits, final units
                    extra_value, extra_rows, extra_cols, extra_grad = extra(logits, start, start + len(t))
                    total_extra += extra_value
                if column_bias is not None:  # -inf: a class left out of the softmax (no probability, no gradient)
                    logits.add_(column_bias)
                picked = logits.gather(1, t[:, None])
                top = logits.amax(1, keepdim=True)
                probs = logits.sub_(top).exp_()           # in place: the chunk's logits are not needed again
                norm = probs.sum(1, keepdim=True)
                total += (norm.log() + top - picked).sum()
                if need_hidden or need_weight:
                    probs.div_(norm)
                    probs[torch.arange(len(t), device=t.device), t] -= 1.0   # d CE_sum / d logits
                    if extra is not None:  # stored gradients are d/d(sum) (scaled by 1/P in backward)
                        probs.index_put_((extra_rows, extra_cols), extra_grad.float() * positions, accumulate=True)
                    if need_hidden:
                        torch.mm(probs, weight32, out=grad_hidden[start:start + chunk])
                    if need_weight:
                        grad_weight.addmm_(probs.t(), h)
        ctx.save_for_backward(grad_hidden, grad_weight)
        ctx.positions = positions
        return total / max(positions, 1) + total_extra

    @staticmethod
    def backward(ctx, grad_loss: torch.Tensor):
        grad_hidden, grad_weight = ctx.saved_tensors
        scale = grad_loss.float() / max(ctx.positions, 1)
        if grad_hidden is not None:
            grad_hidden = (grad_hidden * scale).to(ctx.hidden_dtype)
        if grad_weight is not None:
            grad_weight = (grad_weight * scale).to(ctx.weight_dtype)
        return grad_hidden, grad_weight, None, None, None, None


def linear_cross_entropy(hidden: torch.Tensor, weight: torch.Tensor, targets: torch.Tensor,
                         chunk: int = DEFAULT_CHUNK, extra=None, column_bias: torch.Tensor | None = None) -> torch.Tensor:
    """``F.cross_entropy(hidden @ weight.T, targets)`` (mean over positions), in chunks of positions.

    ``hidden[P, H]``, ``weight[N, H]`` (one row per class), ``targets[P]`` in ``0..N-1``. Same value and
    gradients as the plain form up to float rounding; peak memory ``chunk x N`` instead of ``P x N``.

    ``extra(logits, start, end)``: another loss computed from the same chunk logits (rows ``start:end``
    of the batch), fused so it costs no product of its own. It returns ``(value, rows, cols, grad)``: its
    contribution to the loss (final units, e.g. already weighted and averaged) and the sparse derivative
    of that contribution with respect to ``logits[rows, cols]``. The returned loss is then
    ``CE mean + sum of the values``. Distillation's ranking term uses it (``distill/fused_ranking.py``: the
    teacher items' scores and the student's current top-K come from the chunk logits).

    ``column_bias[N]``: added to every row's logits after ``extra`` has read them; ``-inf`` leaves a class out
    of the softmax (the training catalogue of ``dataset.new_items``), the same as dropping its row of ``weight``.
    """
    if hidden.dim() != 2 or weight.dim() != 2 or hidden.shape[1] != weight.shape[1]:
        raise ValueError(f"expected hidden [P, H] and weight [N, H], got {tuple(hidden.shape)} and {tuple(weight.shape)}")
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    return _LinearCrossEntropy.apply(hidden, weight, targets, int(chunk), extra, column_bias)
