"""The LightningModule of DLLM2Rec-style distillation.

Training loss per batch (formulas in :mod:`recdistill.distill.losses`):

    L = L_usual + kd.weight * L_rd

* ``L_usual``: the student's own loss (``student.loss``: ``ce`` over the catalogue, or ``bce`` against
  ``student.num_negatives`` sampled negatives), over every position with a target, exactly as
  :mod:`recdistill.student.module` computes it;
* ``L_rd``: ranking distillation over the positions that have a teacher top-K (positions without one
  contribute to ``L_usual`` only), against ``distill.kd.num_negatives`` sampled negatives;
* embedding distillation lives in the model (:class:`recdistill.student.distilled.DistilledSASRec`);
* with ``distill.dros.enabled`` (DLLM2Rec's code), ``alpha * DROS`` is added to ``L_usual`` and, weighted
  like the ranking term (per position, or as their code broadcasts it: ``distill.dros.ranking_form``), to
  ``L_rd`` (:mod:`recdistill.distill.dros`); it needs the full ``[P, N]`` logits, so the step takes the
  plain (unfused) path;
* DLLM2Rec's code's other forms, each an option: the BCE base loss as one mean over positive and negative
  logits (``distill.base_loss_scale``) and the negative term ``log sigmoid(1 - s)`` (``distill.kd.negative_term``).

Evaluation, logging and the optimizer are the student's (this class extends ``StudentModule``), so the
distilled and the plain student are measured by the same code.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from recdistill.distill.dros import dros_loss, propensity, ranking_dros, target_counts
from recdistill.distill.fused_ranking import FusedRankingTerm
from recdistill.distill.losses import NEGATIVE_SHIFT, ranking_distillation_loss, ranking_weights, sampled_bce_loss
from recdistill.distill.settings import DistillSettings
from recdistill.engine import Efficiency, OptimizerSettings
from recdistill.student.module import StudentModule, catalogue_cross_entropy
from recdistill.student.registry import build_distilled_student
from recdistill.student.settings import RankingEvalSettings, StudentSettings


class DistillModule(StudentModule):
    """``StudentModule`` with the student's embedding-distillation form (a :class:`DistilledSASRec`) and the
    ranking-distillation term.

    Args:
        num_items, student, evaluation, optim, efficiency, dataset_meta, run_config: as ``StudentModule``.
        distill: the ``distill`` group's ``kd``, ``ed`` and ``dros`` (checked by the recipe); saved in the
            checkpoint, whose loader rebuilds the model from ``student`` and ``distill.ed``.
        llm_embeddings: ``[num_items + 1, D]`` teacher item embeddings, or ``None`` (no embedding distillation).
    """

    def __init__(self, num_items: int, student: StudentSettings, distill: DistillSettings,
                 evaluation: RankingEvalSettings, optim: OptimizerSettings, efficiency: Efficiency,
                 dataset_meta: dict | None = None, llm_embeddings: torch.Tensor | None = None,
                 run_config: dict | None = None):
        super().__init__(num_items, student, evaluation, optim, efficiency, dataset_meta, run_config)
        self.save_hyperparameters({**self.hparams, "distill": distill.to_dict()})
        self.distill = distill
        self.model = build_distilled_student(num_items, student, distill.ed, llm_embeddings,
                                             bool(efficiency.uniform_dropout))
        self.model.gradient_checkpointing = bool(efficiency.gradient_checkpointing)
        kd = distill.kd
        self.kd_weight = kd.weight
        self.kd_lambda = kd.lambda_
        self.a_pos, self.a_conf, self.a_cons = kd.a_pos, kd.a_conf, kd.a_cons
        self.kd_negatives = kd.num_negatives
        self.average_over = kd.average_over
        self.consistency_k = kd.consistency_k
        self.negative_shift = NEGATIVE_SHIFT[kd.negative_term]
        self.base_loss_form = distill.base_loss_scale
        self.student_negatives = student.num_negatives if self.loss_name == "bce" else 0
        self.dros_alpha = distill.dros.alpha if distill.dros.enabled else 0.0
        self.dros_beta = distill.dros.beta
        self.dros_ranking_form = distill.dros.ranking_form
        self.dros_ps: torch.Tensor | None = None

    def setup(self, stage: str) -> None:
        """DROS propensities from the training targets the data module serves (DLLM2Rec counts each
        training sample's next item; our samples are every target position of the training windows)."""
        super().setup(stage)
        if stage == "fit" and self.catalogue is not None and self.model.uses_llm:
            # an item with no training interaction is scored by its LLM embedding alone: its ID row would be
            # an untrained random vector (noise). It is never an input and never in the training softmax, so
            # zeroed once it stays zero, except where a sampled negative (BCE, the ranking term) draws it:
            # the negative sampler does not know the training catalogue yet
            with torch.no_grad():
                unseen = torch.as_tensor(self.item_counts) == 0
                unseen[0] = False
                self.model.item_embedding.weight[unseen.to(self.model.item_embedding.weight.device)] = 0.0
        if self.dros_alpha and stage == "fit" and self.dros_ps is None:
            windows = self.trainer.datamodule.windows
            self.dros_ps = propensity(target_counts(torch.as_tensor(windows.targets), self.model.num_items))

    def _dros(self, logits: torch.Tensor, columns: torch.Tensor) -> torch.Tensor:
        return dros_loss(logits, columns, self.dros_ps.to(logits.device), self.dros_beta)

    def training_step(self, batch, batch_idx):
        with self.model.shared_item_table():
            return self._training_step(batch)

    def _training_step(self, batch):
        model = self.model
        hidden = model(batch["inputs"])
        mask = batch["targets"] > 0
        h = hidden[mask]
        targets = batch["targets"][mask]
        size = len(batch["inputs"])
        distilling = self.kd_weight > 0 and "teacher_items" in batch
        rd = covered = None
        if self.dros_alpha:
            return self._log_losses(*self._plain_step_with_dros(batch, hidden, h, targets, mask, distilling), size)
        if self.loss_name == "ce" and distilling:
            # L_rd inside the fused CE pass, from the same chunk logits (distill/fused_ranking.py)
            term = self.fused_ranking_term(batch, mask)
            loss = catalogue_cross_entropy(h, model.all_item_embeddings(), targets, self.catalogue, extra=term)
            rd, covered = term.rd, float(term.rows)  # rd already divided by the chosen denominator
            usual = loss.detach() - self.kd_weight * rd
        else:
            if self.loss_name == "ce":
                # the student's fused full-catalogue CE (items 1..N), never the [P, N] logits
                usual = catalogue_cross_entropy(h, model.all_item_embeddings(), targets, self.catalogue)
            else:
                pos = model.score_items(h, targets.unsqueeze(-1)).squeeze(-1).float()
                neg = model.score_items(h, batch["negatives"][mask][:, : self.student_negatives]).float()
                usual = sampled_bce_loss(pos, neg, self.base_loss_form)
            loss = usual
            if distilling:
                rd, covered = self.ranking_distillation(batch, hidden)
                if self.average_over == "all_positions":
                    rd = rd * covered / max(int(mask.sum()), 1)
                loss = usual + self.kd_weight * rd
        return self._log_losses(loss, usual, rd, covered, size)

    def _plain_step_with_dros(self, batch, hidden, h, targets, mask, distilling):
        """The step with DROS: full logits at every target position, the usual loss from them, DROS on
        them, and the ranking term with its own DROS part. Memory: a ``[P, N]`` float tensor and its
        gradient, which the fused path avoids (P target positions, N items)."""
        logits = self.model.score_all(h)[:, 1:].float()
        if self.loss_name == "ce":
            usual = F.cross_entropy(logits, targets - 1)
        else:
            pos = logits.gather(1, (targets - 1).unsqueeze(-1)).squeeze(-1)
            neg = logits.gather(1, batch["negatives"][mask][:, : self.student_negatives] - 1)
            usual = sampled_bce_loss(pos, neg, self.base_loss_form)
        usual = usual + self.dros_alpha * self._dros(logits, (targets - 1).unsqueeze(-1)).mean()
        loss, rd, covered = usual, None, None
        if distilling:
            rd, covered = self.ranking_distillation(batch, hidden, with_dros=True)
            if self.average_over == "all_positions":
                rd = rd * covered / max(int(mask.sum()), 1)
            loss = usual + self.kd_weight * rd
        return loss, usual, rd, covered

    def _log_losses(self, loss, usual, rd, covered, size):
        if rd is not None:
            self.log("train/loss_rd", rd, on_step=False, on_epoch=True, batch_size=size)
            self.log("train/teacher_positions", covered, on_step=False, on_epoch=True, reduce_fx="sum", batch_size=size)
        self.log("train/loss_usual", usual, on_step=False, on_epoch=True, batch_size=size)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=size)
        return loss

    def fused_ranking_term(self, batch: dict, mask: torch.Tensor) -> FusedRankingTerm:
        """The ``L_rd`` hook for the fused CE: the teacher rows' places among the target rows, their items,
        confidences and negatives (the same tensors :meth:`ranking_distillation` uses). Teacher rows sit at
        target positions (the data module aligns them so); ``& mask`` keeps that true without a check that
        would synchronise a GPU every step."""
        has_teacher = (batch["teacher_items"][..., 0] > 0) & mask
        items = batch["teacher_items"][has_teacher]
        k = (self.consistency_k or items.shape[1]) if self.a_cons > 0 else 0

        def weights_fn(items_, confidences_, student_topk_, valid_):
            return ranking_weights(items_, confidences_, student_topk_, valid_, self.kd_lambda,
                                   self.a_pos, self.a_conf, self.a_cons)

        return FusedRankingTerm(has_teacher[mask].nonzero().squeeze(1), items, batch["teacher_confidences"][has_teacher],
                                batch["negatives"][has_teacher][:, : self.kd_negatives], weights_fn, self.kd_weight, k,
                                denominator=int(mask.sum()) if self.average_over == "all_positions" else None,
                                negative_shift=self.negative_shift)

    def ranking_distillation(self, batch: dict, hidden: torch.Tensor,
                             with_dros: bool = False) -> tuple[torch.Tensor, float]:
        """``L_rd`` over the positions that have teacher items, and how many there were (the unfused form:
        ``student.loss=bce``; with the default CE loss :class:`FusedRankingTerm` computes the same).
        ``with_dros`` adds ``alpha * mean_p sum_k w_pk dros(t_pk)`` (DLLM2Rec's code; or their broadcast form,
        ``distill.dros.ranking_form=published``)."""
        has_teacher = batch["teacher_items"][..., 0] > 0               # [B, L]
        items = batch["teacher_items"][has_teacher]                     # [P, K]
        confidences = batch["teacher_confidences"][has_teacher]
        valid = items > 0
        negatives = batch["negatives"][has_teacher][:, : self.kd_negatives]
        # Scores of the K teacher items and the negatives: gathered rows times h, summed. F.embedding's
        # gather has a dense backward (this op alone, forward + backward: 31 ms against 61 ms for table[ids]
        # with a batched bmm at 5,100 positions x 21 items on the 2-core CPU).
        h = hidden[has_teacher]
        table = self.model.all_item_embeddings()
        ids = torch.cat([items, negatives], dim=1)
        scores = (F.embedding(ids, table) * h.unsqueeze(1)).sum(-1).float()
        item_scores, negative_scores = scores.split([items.shape[1], negatives.shape[1]], dim=1)
        item_scores = item_scores.masked_fill(~valid, 0.0)  # padding entries: weight 0, keep them finite
        k = self.consistency_k or items.shape[1]
        with torch.no_grad():
            if self.a_cons > 0:
                # the student's current top-K over the whole catalogue, at the teacher's positions only
                current = self.model.score_all(h.detach())
                student_topk = current.topk(k, dim=1).indices
            else:
                student_topk = items.new_zeros(items.shape[0], 1)
        weights = ranking_weights(items, confidences, student_topk, valid, self.kd_lambda,
                                  self.a_pos, self.a_conf, self.a_cons)
        rd = ranking_distillation_loss(item_scores, negative_scores, weights, self.negative_shift)
        if with_dros and items.shape[0]:
            logits = self.model.score_all(h)[:, 1:].float()
            per_item = self._dros(logits, (items - 1).clamp_min(0))  # padding entries have weight 0
            rd = rd + self.dros_alpha * ranking_dros(weights, per_item, valid, self.dros_ranking_form)
        return rd, float(items.shape[0])
