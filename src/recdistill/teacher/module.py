"""The teacher's LightningModule: answer-token loss in training, candidate ranking in evaluation."""

from __future__ import annotations

import math

import lightning as L
import torch

from recdistill.engine import Efficiency, OptimizerSettings
from recdistill.engine.optim import build_scheduler
from recdistill.teacher.curriculum import Curriculum
from recdistill.evaluation.candidate_metrics import candidate_metrics, judge_generation, target_ranks
from recdistill.teacher.evaluation import TeacherEvalSettings, generate_answers
from recdistill.teacher.model import ILoRATeacher
from recdistill.teacher.optim import TeacherOptimSettings, build_teacher_optimizer
from recdistill.teacher.scoring import score


def across_ranks(loss: torch.Tensor, labels: torch.Tensor, gather) -> torch.Tensor:
    """This rank's answer-token mean ``loss`` rescaled so that DDP's average of the ranks' gradients is the
    gradient of the mean over every answer token of the global batch, as one process computes it (each
    rank's own mean would give a rank with fewer answer tokens more weight per token). ``gather`` returns
    a tensor from every rank stacked (``LightningModule.all_gather``)."""
    tokens = labels.ne(-100).sum()
    counts = gather(tokens.detach()).reshape(-1)
    return loss * tokens * counts.numel() / counts.sum().clamp(min=1)


class TeacherModule(L.LightningModule):
    """Args:
        teacher: the :class:`ILoRATeacher`.
        encoder: the :class:`PromptEncoder` (title ids for scoring, the tokenizer for generation).
        titles: ``titles[i]`` item i's title (generation metrics compare text).
        optim: the AdamW groups' settings (:class:`TeacherOptimSettings`, iLoRA's groups); plain
            :class:`OptimizerSettings` put ``lr`` and ``weight_decay`` on every group, the gate at the full rate.
        eff: the efficiency settings (schedule, fused AdamW).
        evaluation: how validation and test batches are scored (:class:`TeacherEvalSettings`).
        num_candidates: candidates per prompt (``teacher.prompt.num_candidates``), for the metrics' names.
        curriculum: LLaRA's text-to-hybrid curriculum; None in evaluation (every prompt hybrid).
    """

    def __init__(self, teacher: ILoRATeacher, encoder, titles: list[str],
                 optim: TeacherOptimSettings | OptimizerSettings, eff: Efficiency, evaluation: TeacherEvalSettings,
                 num_candidates: int, curriculum: Curriculum | None = None):
        super().__init__()
        self.teacher = teacher
        self.encoder = encoder
        self.titles = titles
        self.eff, self.evaluation = eff, evaluation
        self.num_candidates = num_candidates
        if isinstance(optim, OptimizerSettings):
            optim = TeacherOptimSettings(optim.lr, optim.weight_decay, bridge_weight_decay=optim.weight_decay,
                                         router_lr_scale=1.0, betas=tuple(optim.betas), fused=eff.fused_adamw,
                                         weight_decay_form="decoupled")
        self.optim = optim
        self.curriculum = curriculum
        # Checkpoints hold only the trained tensors (see on_save_checkpoint), so loading must not be strict.
        self.strict_loading = False
        self._eval: dict[str, dict] = {}

    # -- training -------------------------------------------------------------------------------------
    def on_train_epoch_start(self):
        # Lightning keeps the modes it finds; the base was loaded in eval mode. LoRA dropout needs train
        # mode (the frozen student stays in eval: ILoRATeacher.train).
        self.teacher.train()

    def _total_steps(self) -> int:
        total = self.trainer.estimated_stepping_batches
        return int(total) if total is not None and math.isfinite(total) else 1000

    def _steps_per_epoch(self, total: int) -> int:
        epochs = self.trainer.max_epochs
        return max(1, total // int(epochs)) if epochs is not None and int(epochs) > 0 else total

    def on_train_start(self):
        self._steps_in_run = self._total_steps()  # Lightning recomputes the estimate on every access
        if self.curriculum is not None and self.curriculum.kind != "none" and self.curriculum.placeholder == "random_row":
            config = self.teacher.base_config
            self.teacher.use_text_only_row(self.curriculum.text_only_row(
                config.hidden_size, float(getattr(config, "initializer_range", 0.02))))

    def training_step(self, batch, batch_idx):
        if self.curriculum is not None and self.curriculum.kind != "none":
            total = getattr(self, "_steps_in_run", None) or self._total_steps()
            batch, hybrid = self.curriculum.apply(batch, self.current_epoch, self.global_step, total,
                                                  self._steps_per_epoch(total))
            self.log("train/hybrid_share", hybrid.float().mean(), on_step=True, on_epoch=True, batch_size=len(hybrid))
        out = self.teacher(batch["input_ids"], batch["attention_mask"], batch["item_slots"], batch["student_seq"],
                           labels=batch["labels"])
        self.log("train/loss", out.loss, prog_bar=True, on_step=True, on_epoch=True, batch_size=len(batch["input_ids"]))
        return across_ranks(out.loss, batch["labels"], self.all_gather) if self.trainer.world_size > 1 else out.loss

    def configure_optimizers(self):
        optimizer = build_teacher_optimizer(self.teacher, self.optim)
        scheduler = build_scheduler(optimizer, str(self.eff.scheduler), self._total_steps(),
                                    float(self.eff.warmup_ratio), float(self.eff.min_lr_ratio),
                                    warmup_start_ratio=self.eff.warmup_start_ratio)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        trainable = {f"teacher.{k}" for k in self.teacher.trainable_state_dict()}
        checkpoint["state_dict"] = {k: v for k, v in checkpoint["state_dict"].items() if k in trainable}

    # -- evaluation -----------------------------------------------------------------------------------
    def _eval_step(self, split: str, batch) -> None:
        acc = self._eval.setdefault(split, {"ranks": [], "gen": []})
        e = self.evaluation
        loss = self.teacher(batch["input_ids"], batch["attention_mask"], batch["item_slots"], batch["student_seq"],
                            labels=batch["labels"]).loss
        self.log(f"{split}/loss", loss, on_epoch=True, batch_size=len(batch["input_ids"]))
        if e.likelihood:
            scores = score(self.teacher, batch, self.encoder.answers,
                           self.encoder.slot_id, e.candidate_batch_size, e.score_norm, kv_cache=e.kv_cache)
            ranks = target_ranks(scores, batch["target_index"].to(scores.device)).cpu()
            acc["ranks"].extend(zip(batch["user"].tolist(), ranks.tolist()))
        if e.generate:
            texts = generate_answers(self.teacher, batch, self.encoder.tokenizer, e.max_new_tokens, e.min_new_tokens)
            cands = [[self.titles[int(c)] for c in row] for row in batch["candidates"].tolist()]
            targets = [self.titles[int(t)] for t in batch["target"].tolist()]
            acc["gen"].extend(zip(batch["user"].tolist(), texts, cands, targets))

    def _eval_end(self, split: str) -> None:
        acc = self._eval.pop(split, None)
        if not acc:
            return
        metrics = {}
        ranks, gen_rows = self._every_process(acc["ranks"]), self._every_process(acc["gen"])
        if ranks:
            metrics.update(candidate_metrics(torch.tensor([r for _, r in ranks]), self.num_candidates))
        if gen_rows:
            texts, cands, targets = ([row[i] for row in gen_rows] for i in (1, 2, 3))
            gen = judge_generation(texts, cands, targets)
            metrics.update({k: v for k, v in gen.items() if k in ("gen_valid_ratio", "gen_hr@1_valid", "gen_hr@1")})
        for name, value in metrics.items():
            if not math.isnan(value):
                self.log(f"{split}/{name}", value, prog_bar=name.endswith("ndcg@10"))

    def _every_process(self, rows: list[tuple]) -> list[tuple]:
        """This process's ``(user, ...)`` evaluation rows, or under DDP every process's, each user once: a
        DistributedSampler gives every process the same number of rows, padding with repeats. (Without the
        gather each process would log metrics over its own share only.)"""
        if self.trainer.world_size <= 1:
            return rows
        parts = [None] * self.trainer.world_size
        torch.distributed.all_gather_object(parts, rows)
        unique = {row[0]: row for part in parts for row in part}
        return [unique[user] for user in sorted(unique)]

    def validation_step(self, batch, batch_idx):
        self._eval_step("val", batch)

    def on_validation_epoch_end(self):
        self._eval_end("val")

    def test_step(self, batch, batch_idx):
        self._eval_step("test", batch)

    def on_test_epoch_end(self):
        self._eval_end("test")
