"""The ranking-distillation term computed inside the student's fused cross-entropy pass.

``L_rd`` needs, at every position with teacher outputs, the student's scores of the K teacher items and
of n negatives, plus the student's current top-K (for ``w_cons``). All of them are entries of the
full-catalogue logits that :func:`recdistill.layers.linear_cross_entropy` already computes chunk by
chunk; taking them there, with ``L_rd``'s derivative in closed form added to the chunk's gradient, makes
the term cost a few gathers instead of its own gathered product, top-K product and backward (measured:
an epoch of distillation with teacher rows at every position fell from 1.8x to about 1.3x the student's).
Same value and gradients as ``ranking_distillation_loss`` on the same scores and weights (tested).

Derivatives of ``kd_weight * mean_p sum_k w_pk * -(log sigmoid(s_pk) + mean_j log sigmoid(shift - s_pj))``
(``shift`` 0: ``log(1 - sigmoid(s))``, ours; 1: DLLM2Rec's code, ``distill.kd.negative_term``):
``d/ds_pk = -w_pk * sigmoid(-s_pk) * c`` and ``d/ds_pj = (sum_k w_pk) * sigmoid(s_pj - shift) / n * c`` with
``c = kd_weight / P`` (P: the teacher rows, or all target rows with ``kd.average_over=all_positions``;
weights are constants, as in the unfused form).
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from recdistill.distill.losses import negative_term


class FusedRankingTerm:
    """A per-chunk hook for ``linear_cross_entropy(..., extra=...)``, whose columns are items ``1..N``.

    Args:
        row_positions: ``[R]`` sorted indices, among the rows given to the cross-entropy, of the rows
            that have teacher outputs.
        items, confidences: ``[R, K]`` the teacher's items (0 = padding) and confidences at those rows.
        negatives: ``[R, n]`` sampled negative item ids (never 0).
        weights_fn: ``(items, confidences, student_topk, valid) -> [R', K]`` weights (``ranking_weights``).
        kd_weight: the term's scale.
        consistency_k: size of the student's top-K for ``w_cons``; 0 skips the top-K (``a_cons = 0``).
        denominator: what the summed per-row terms are divided by: the number of teacher rows (the
            default, ``L_rd`` as a mean over exported positions) or of all target rows
            (``distill.kd.average_over=all_positions``).
        negative_shift: ``NEGATIVE_SHIFT[distill.kd.negative_term]`` (0 = ours).
    """

    def __init__(self, row_positions: torch.Tensor, items: torch.Tensor, confidences: torch.Tensor,
                 negatives: torch.Tensor, weights_fn: Callable, kd_weight: float, consistency_k: int,
                 denominator: int | None = None, negative_shift: float = 0.0):
        self.row_positions = row_positions
        # chunk bounds are looked up on a CPU copy: one device-to-host copy per step, not one per chunk
        self._positions_cpu = row_positions.cpu()
        self.items, self.confidences, self.negatives = items, confidences, negatives
        self.weights_fn = weights_fn
        self.kd_weight = float(kd_weight)
        self.negative_shift = float(negative_shift)
        self.consistency_k = int(consistency_k)
        self.rows = len(row_positions)
        self.denominator = max(int(denominator if denominator is not None else self.rows), 1)
        self.rd_sum = torch.zeros(())  # sum over rows of the unscaled per-row L_rd, for logging

    def __call__(self, logits: torch.Tensor, start: int, end: int):
        bounds = torch.searchsorted(self._positions_cpu, torch.tensor([start, end]))
        lo, hi = int(bounds[0]), int(bounds[1])
        if lo == hi:
            empty = torch.zeros(0, dtype=torch.long, device=logits.device)
            return logits.new_zeros(()), empty, empty, logits.new_zeros(0)
        local = self.row_positions[lo:hi] - start
        # every row of the chunk has teacher outputs (the common case when all positions are exported):
        # read the chunk's logits in place instead of copying the selected rows
        scores = logits if hi - lo == end - start else logits[local]            # [Rc, N]
        items, negatives = self.items[lo:hi], self.negatives[lo:hi]
        valid = items > 0
        if self.consistency_k > 0:
            student_topk = scores.topk(min(self.consistency_k, scores.shape[1]), dim=1).indices + 1
        else:
            student_topk = items.new_zeros(items.shape[0], 1)
        weights = self.weights_fn(items, self.confidences[lo:hi], student_topk, valid)
        item_cols, negative_cols = (items - 1).clamp_min(0), negatives - 1
        item_scores = scores.gather(1, item_cols).masked_fill(~valid, 0.0)
        negative_scores = scores.gather(1, negative_cols)
        per_row = (weights * (-F.logsigmoid(item_scores)
                              + negative_term(negative_scores, self.negative_shift).mean(-1, keepdim=True))).sum(-1)
        self.rd_sum = self.rd_sum.to(per_row.device) + per_row.sum().detach()
        scale = self.kd_weight / self.denominator
        grad_items = -weights * torch.sigmoid(-item_scores) * scale
        grad_negatives = (weights.sum(-1, keepdim=True) * torch.sigmoid(negative_scores - self.negative_shift)
                          / negatives.shape[1] * scale)
        rows = torch.cat([local[:, None].expand_as(item_cols), local[:, None].expand_as(negative_cols)], 1)
        cols = torch.cat([item_cols, negative_cols], 1)
        grads = torch.cat([grad_items, grad_negatives], 1)
        return per_row.sum() * scale, rows.reshape(-1), cols.reshape(-1), grads.reshape(-1)

    @property
    def rd(self) -> torch.Tensor:
        """The batch's unscaled ``L_rd`` (per-row terms summed over the teacher rows / the denominator)."""
        return self.rd_sum / self.denominator
