"""The LightningModule of the student (the model ``student/registry.py`` builds): losses, ranking evaluation,
optimizer.

Losses (``student.loss``):

* ``ce``  cross-entropy over the full catalogue at every position that has a target (default);
* ``bce`` binary cross-entropy of the target against ``num_negatives`` sampled negatives per position,
  as in the original SASRec (the negatives come with the batch, see ``data.datamodule``).

Evaluation collects the full-catalogue rank (seen items excluded when ``eval.exclude_seen``) and the
sampled-protocol rank of every user's target, gathers them over processes, drops the duplicates a
DistributedSampler adds, and logs ``<split>/<metric>@k`` and ``<split>/sampled<N>_<metric>@k``.
"""

from __future__ import annotations

import lightning as L
import torch
import torch.nn.functional as F

from recdistill.engine import Efficiency, OptimizerSettings, configure_optimizers
from recdistill.evaluation import metrics_from_ranks, rank_of_targets, sampled_rank_of_targets
from recdistill.evaluation.buckets import bucket_metrics
from recdistill.evaluation.chance import chance_hr, chance_ndcg, full_candidates
from recdistill.layers.fused_ce import linear_cross_entropy
from recdistill.student.registry import build_student
from recdistill.student.sasrec import SASRec
from recdistill.student.settings import RankingEvalSettings, StudentSettings

LOSSES = ("ce", "bce")


class TrainingCatalogue:
    """The items a model may be trained to predict: under ``dataset.new_items`` only those with training
    interactions, so a held-out item is never pushed down by the softmax for an item it could not have
    competed with (it did not exist yet); ``None`` means the whole catalogue (every other run). It is a
    ``-inf`` logit bias for the held-out items (``linear_cross_entropy``'s ``column_bias``), so the student's
    and distillation's cross-entropy, fused ranking term included, leave them out the same way."""

    def __init__(self, counts):
        seen = torch.as_tensor(counts)[1:] > 0
        self.bias = torch.zeros(len(seen)).masked_fill(~seen, float("-inf"))   # [N], columns of items 1..N

    def bias_on(self, device) -> torch.Tensor:
        if self.bias.device != torch.device(device):  # moved once, not every step
            self.bias = self.bias.to(device)
        return self.bias


def catalogue_cross_entropy(h: torch.Tensor, table: torch.Tensor, targets: torch.Tensor,
                            catalogue: TrainingCatalogue | None, extra=None) -> torch.Tensor:
    """Full-catalogue CE over items 1..N (or the training catalogue), in cache-sized chunks (see fused_ce)."""
    bias = None if catalogue is None else catalogue.bias_on(h.device)
    return linear_cross_entropy(h, table[1:], targets - 1, extra=extra, column_bias=bias)


def sequence_loss(model: SASRec, batch: dict, loss: str, catalogue: TrainingCatalogue | None = None) -> torch.Tensor:
    """Mean next-item loss over every position of the batch that has a target."""
    hidden = model(batch["inputs"])
    mask = batch["targets"] > 0
    h = hidden[mask]                      # [P, H]: only positions with a target, padding costs nothing
    targets = batch["targets"][mask]      # [P]
    if loss == "ce":
        # logits over items 1..N only (id 0 is never a target)
        return catalogue_cross_entropy(h, model.all_item_embeddings(), targets, catalogue)
    negatives = batch["negatives"][mask]  # [P, n]
    pos = model.score_items(h, targets.unsqueeze(-1))
    neg = model.score_items(h, negatives)
    logits = torch.cat([pos, neg], dim=-1).float()
    labels = torch.zeros_like(logits)
    labels[:, 0] = 1.0
    # mean over positives and over negatives separately, as SASRec does, so n does not reweight them
    per_item = F.binary_cross_entropy_with_logits(logits, labels, reduction="none")
    return per_item[:, 0].mean() + per_item[:, 1:].mean()


class StudentModule(L.LightningModule):
    """Holds the student model (built by ``student/registry.py``) as ``self.model`` (the checkpoint's
    ``model.*`` keys).

    Args:
        num_items: catalogue size.
        student: the ``student`` group (model and loss); saved in the checkpoint (``to_dict``), which is
            what the loader rebuilds the model from.
        evaluation: the ranking evaluation's settings.
        optim, efficiency: the optimizer's and the engine's settings.
        dataset_meta: name, fingerprint and folder of the prepared dataset.
        run_config: the run's resolved config as plain containers, saved whole in the checkpoint: ``eval
            student`` rebuilds the run's data and evaluation from it.
    """

    def __init__(self, num_items: int, student: StudentSettings, evaluation: RankingEvalSettings,
                 optim: OptimizerSettings, efficiency: Efficiency, dataset_meta: dict | None = None,
                 run_config: dict | None = None):
        super().__init__()
        # Plain containers only, so checkpoints load with torch.load(weights_only=True).
        self.save_hyperparameters({"num_items": int(num_items), "cfg": run_config or {},
                                   "dataset_meta": dataset_meta or {}, "student": student.to_dict()})
        self.student = student
        self.optim = optim
        self.efficiency = efficiency
        self.model = build_student(num_items, student, bool(efficiency.uniform_dropout))
        self.model.gradient_checkpointing = bool(efficiency.gradient_checkpointing)
        self.loss_name = student.loss
        self.ks = list(evaluation.ks)
        self.exclude_seen = evaluation.exclude_seen
        self.sampled = evaluation.sampled_negatives
        self._outputs: list[torch.Tensor] = []
        self.item_counts = None  # training interactions per item, from the data module (popularity buckets)
        self.catalogue: TrainingCatalogue | None = None

    def setup(self, stage: str) -> None:
        data = getattr(getattr(self.trainer, "datamodule", None), "data", None)
        if data is not None and hasattr(data, "item_train_counts"):
            self.item_counts = data.item_train_counts
            if len(data.new_items):
                self.catalogue = TrainingCatalogue(self.item_counts)

    def compile_model(self, compile_setting) -> None:
        """``efficiency.compile``: true compiles the encoder with torch.compile's default backend; a string
        names the backend. ``nn.Module.compile`` compiles in place, so checkpoint keys do not change."""
        if compile_setting in (False, None, "false"):
            return
        backend = "inductor" if compile_setting is True or compile_setting == "true" else str(compile_setting)
        self.model.compile(backend=backend)

    # -- training -----------------------------------------------------------------------------------
    def training_step(self, batch, batch_idx):
        loss = sequence_loss(self.model, batch, self.loss_name, self.catalogue)
        self.log("train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(batch["inputs"]))
        return loss

    def configure_optimizers(self):
        return configure_optimizers(self, self.optim, self.efficiency, model=self.model)

    def optimizer_zero_grad(self, epoch, batch_idx, optimizer):
        optimizer.zero_grad(set_to_none=True)

    # -- evaluation ---------------------------------------------------------------------------------
    @torch.no_grad()
    def rank_batch(self, batch: dict) -> torch.Tensor:
        """``[B, 6]``: user, full-catalogue rank, sampled rank (-1 when the sampled protocol is off), the
        number of candidates of each protocol (for the chance level, and to tell when a user has fewer
        unseen items than the sampled protocol asks for), and the target (for the popularity buckets)."""
        hidden = self.model(batch["inputs"])[:, -1, :]
        scores = self.model.score_all(hidden).float()
        targets = batch["targets"]
        if self.exclude_seen:
            ranks = rank_of_targets(scores, targets, batch["seen_rows"], batch["seen_cols"])
            candidates = full_candidates(self.model.num_items, targets, batch["seen_rows"], batch["seen_cols"])
        else:
            ranks = rank_of_targets(scores, targets)
            candidates = full_candidates(self.model.num_items, targets)
        if self.sampled > 0:
            sampled = sampled_rank_of_targets(scores, targets, batch["negatives"])
            sampled_candidates = 1 + (batch["negatives"] > 0).sum(1)
        else:
            sampled = sampled_candidates = torch.full_like(ranks, -1)
        return torch.stack([batch["users"].to(ranks.device), ranks, sampled, candidates.to(ranks.device),
                            sampled_candidates.to(ranks.device), targets.to(ranks.device)], dim=1)

    def _eval_step(self, batch):
        self._outputs.append(self.rank_batch(batch))

    def validation_step(self, batch, batch_idx):
        self._eval_step(batch)

    def test_step(self, batch, batch_idx):
        self._eval_step(batch)

    def on_validation_epoch_start(self):
        self._outputs = []

    def on_test_epoch_start(self):
        self._outputs = []

    def _gathered(self) -> torch.Tensor:
        rows = torch.cat(self._outputs) if self._outputs else torch.zeros(0, 6, dtype=torch.long, device=self.device)
        self._outputs = []
        if self.trainer.world_size > 1:
            # a DistributedSampler gives every process the same number of rows, padding with repeats
            rows = self.all_gather(rows).reshape(-1, 6)
            order = torch.argsort(rows[:, 0], stable=True)
            rows = rows[order]
            first = torch.ones(len(rows), dtype=torch.bool, device=rows.device)
            first[1:] = rows[1:, 0] != rows[:-1, 0]
            rows = rows[first]
        return rows

    def _log_metrics(self, split: str) -> None:
        rows = self._gathered()
        metrics = metrics_from_ranks(rows[:, 1], self.ks, prefix=f"{split}/")
        if len(rows):
            # what a random ranking would score under each protocol (the report states it)
            metrics[f"{split}/chance_ndcg@10"] = chance_ndcg(rows[:, 3].cpu(), 10)
            metrics[f"{split}/chance_hr@10"] = chance_hr(rows[:, 3].cpu(), 10)
        if self.sampled > 0:
            sampled = f"{split}/sampled{self.sampled}_"
            metrics.update(metrics_from_ranks(rows[:, 2], self.ks, prefix=sampled))
            if len(rows):
                metrics[f"{sampled}chance_ndcg@10"] = chance_ndcg(rows[:, 4].cpu(), 10)
                metrics[f"{sampled}chance_hr@10"] = chance_hr(rows[:, 4].cpu(), 10)
                # users with fewer unseen items than N: for them the sampled protocol is the full ranking
                metrics[f"{sampled}short_users"] = float((rows[:, 4] < self.sampled + 1).sum())
        metrics[f"{split}/users"] = float(len(rows))
        if self.item_counts is not None and len(rows):
            metrics.update(bucket_metrics(rows[:, 1], rows[:, 5], rows[:, 3], self.item_counts, split))
        # values are identical on every process after the gather, so no further reduction
        self.log_dict(metrics, prog_bar=False, sync_dist=False)
        self.last_metrics = metrics

    def on_validation_epoch_end(self):
        if self.trainer.sanity_checking:
            self._outputs = []
            return
        self._log_metrics("val")

    def on_test_epoch_end(self):
        self._log_metrics("test")
