"""The training side of ``teacher_learning_curve.py``: build the CPU teacher from plain settings, train
it step by step with a checkpoint that survives a kill, and evaluate it on fixed validation candidates.
The candidates are drawn by :mod:`recdistill.evaluation.candidates`, the one drawer that ``eval teacher`` and
``eval student`` with the candidate protocol use too, and both models are scored by
:mod:`recdistill.evaluation` (``teacher_scores``, ``student_scores``).

A stripped copy of the training loop (nanoGPT's advice for benchmarks) rather than Lightning: the curve
needs evaluations at exact steps, a wall-clock budget that excludes them, and a resume that restores the
data order, the schedule and the random state mid-epoch.
"""

from __future__ import annotations

import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch


@dataclass
class CurveSettings:
    llm: str = "smollm2-135m"
    student_checkpoint: str = ""
    prepared: str | None = None
    seed: int = 0
    budget_minutes: float = 60.0
    max_steps: int = 400                # the cosine schedule spans this many steps; the budget may stop it earlier
    eval_steps: list[int] = field(default_factory=lambda: [0, 100, 200, 400])
    val_users: int = 304
    batch_size: int = 8
    lr: float = 8e-4
    scheduler: str = "cosine"           # cosine | constant (after the warm-up): constant makes every point of a
                                        # budget-stopped curve reproducible with max_steps = that point's step
    warmup_ratio: float = 0.05
    candidates: str = "none"            # teacher.prompt.candidates
    length_bucket_batches: int = 50     # teacher.data.length_bucket_batches
    top_layers: int | None = None       # teacher.lora.top_layers
    scaling: str = "ilora"              # teacher.lora.scaling
    train_positions: str = "last"
    last_n: int = 10
    num_candidates: int = 20
    history_items: int = 10             # items the prompt shows (teacher.prompt.history_items)
    candidate_exclude: str = "all"      # negatives avoid every item the user touched (eval.candidates.exclude)
    eval_batch_size: int = 8
    candidate_batch_size: int = 64
    threads: int = 2
    precision: str = "fp32"             # fp32 | bf16-mixed (fp32 weights, autocast) | bf16-base (bf16 frozen base,
                                        # fp32 adapters, autocast: what `auto` picks where bf16 is fast)
    checkpoint_every: int = 25          # steps between checkpoints (plus one at every evaluation)

    def to_dict(self) -> dict:
        return asdict(self)


class CurveRun:
    """Everything built once per process: data, student, teacher, prompts, optimizer, fixed val batches."""

    def __init__(self, s: CurveSettings, cache: str):
        from benchmarks.teacher.teacher_common import linear_gate_spec, llm_config, prompt_settings

        from recdistill.engine.optim import build_optimizer, build_scheduler
        from recdistill.evaluation.candidates import CandidateProtocol, draw_candidate_sets
        from recdistill.student.checkpoint import load_student_for
        from recdistill.teacher.build import build_teacher
        from recdistill.teacher.data import PromptCollator, PromptDataset, train_samples
        from recdistill.teacher.prompt_encoder import PromptEncoder, load_templates

        self.s = s
        torch.set_num_threads(int(s.threads))
        self.data = _prepared(s.prepared)
        self.student, _ = load_student_for(s.student_checkpoint, self.data)
        torch.manual_seed(s.seed)  # the projector, gate and LoRA A start from the seed
        self.llm_cfg = llm_config(s.llm, dtype="bfloat16" if s.precision == "bf16-base" else "float32")
        spec = linear_gate_spec(scaling_rule=s.scaling, top_layers=s.top_layers)
        self.teacher, loaded = build_teacher(self.llm_cfg, spec, self.student, cache)
        self.encoder = PromptEncoder(loaded.tokenizer, self.data.titles, load_templates(None, s.candidates), s.candidates)
        settings = prompt_settings(int(self.student.max_len), history_items=s.history_items,
                                   num_candidates=s.num_candidates, seed=s.seed)
        self.train_set = PromptDataset(train_samples(self.data, s.train_positions, s.last_n), self.encoder,
                                       self.data.num_items, settings, "train", train=True)
        self.collate = PromptCollator(self.encoder.slot_id, settings.student_len, with_prompts=False)
        protocol = CandidateProtocol(history_items=s.history_items, num_candidates=s.num_candidates,
                                     exclude=s.candidate_exclude, draws=1, seed=s.seed, limit_users=s.val_users)
        self.val_sets = draw_candidate_sets(self.data, "val", protocol, draw=0)
        self.optimizer = build_optimizer(self.teacher, lr=s.lr)
        self.scheduler = build_scheduler(self.optimizer, s.scheduler, s.max_steps, s.warmup_ratio)
        self._epoch_batches: tuple[int, list[list[int]]] | None = None

    # -- data order: a pure function of (seed, epoch), so a resumed run sees the batches it would have seen
    def epoch_batches(self, epoch: int) -> list[list[int]]:
        from recdistill.teacher.buckets import bucketed_batches

        if self._epoch_batches is None or self._epoch_batches[0] != epoch:
            self.train_set.set_epoch(epoch)
            rng = np.random.default_rng([self.s.seed, epoch, 17])
            n, bs = len(self.train_set), self.s.batch_size
            if self.s.length_bucket_batches > 0:
                batches = bucketed_batches(self.train_set.token_lengths(), bs, rng, self.s.length_bucket_batches)
            else:
                order = rng.permutation(n)
                batches = [order[i: i + bs].tolist() for i in range(0, n, bs)]
            self._epoch_batches = (epoch, batches)
        return self._epoch_batches[1]

    def batch_at(self, step: int) -> tuple[dict, float]:
        """The batch of global step ``step`` and the (fractional) epoch it falls in."""
        per_epoch = math.ceil(len(self.train_set) / self.s.batch_size)
        epoch, index = divmod(step, per_epoch)
        batches = self.epoch_batches(epoch)
        index = min(index, len(batches) - 1)
        return self.collate([self.train_set[i] for i in batches[index]]), epoch + index / len(batches)

    def autocast(self):
        import contextlib

        if self.s.precision == "fp32":
            return contextlib.nullcontext()
        return torch.autocast("cpu", dtype=torch.bfloat16)

    def train_step(self, step: int) -> tuple[float, int, int]:
        self.teacher.train()
        batch, _ = self.batch_at(step)
        with self.autocast():
            out = self.teacher(batch["input_ids"], batch["attention_mask"], batch["item_slots"], batch["student_seq"],
                               labels=batch["labels"])
        out.loss.backward()
        self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(out.loss.detach()), int(batch["attention_mask"].sum()), int(batch["input_ids"].shape[0])

    # -- evaluation on the fixed validation candidates -------------------------------------------------
    def teacher_val_scores(self) -> torch.Tensor:
        """``[users, C]`` likelihood scores of the fixed validation candidates."""
        from recdistill.teacher.candidate_protocol import CandidateProtocolSettings, teacher_scores

        settings = CandidateProtocolSettings(template=0, template_seed=0, batch_size=self.s.eval_batch_size, generate=False,
                                             likelihood=True, max_new_tokens=64,
                                             candidate_batch_size=self.s.candidate_batch_size, score_norm="sum",
                                             kv_cache=True, min_new_tokens=0)
        with self.autocast():
            return teacher_scores(self.teacher, self.encoder, self.val_sets, settings).float()

    def student_val_scores(self) -> torch.Tensor:
        """The frozen student's scores of the same candidates, from the whole history it can read."""
        from recdistill.evaluation.student_scores import student_scores

        return student_scores(self.student, self.val_sets.histories, self.val_sets.candidates)

    def val_ranks(self, scores: torch.Tensor) -> np.ndarray:
        """0-based target ranks (ties count against the target), one per validation user."""
        from recdistill.evaluation.candidate_metrics import target_ranks

        return target_ranks(scores, torch.from_numpy(self.val_sets.target_index)).numpy()

    # -- checkpoint: trained tensors, optimizer, schedule, random state, progress ----------------------
    def save(self, path: Path, progress: dict) -> None:
        state = {"trainable": self.teacher.trainable_state_dict(), "optimizer": self.optimizer.state_dict(),
                 "scheduler": self.scheduler.state_dict(), "torch_rng": torch.get_rng_state(),
                 "settings": self.s.to_dict(), "progress": progress}
        tmp = path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, path)  # a kill mid-write leaves the previous checkpoint intact

    def load(self, path: Path) -> dict:
        state = torch.load(path, map_location="cpu", weights_only=False)
        saved = {"precision": "fp32",  # states written before the knob trained in fp32
                 **{k: v for k, v in state["settings"].items() if k not in ("budget_minutes", "threads")}}
        now = {k: v for k, v in self.s.to_dict().items() if k not in ("budget_minutes", "threads")}
        if saved != now:
            diff = sorted(k for k in now if saved.get(k) != now[k])
            raise SystemExit(f"error: {path} was written with other settings ({', '.join(diff)}); "
                             "use another --work folder or the same settings")
        own = dict(self.teacher.named_parameters())
        with torch.no_grad():
            for name, tensor in state["trainable"].items():
                own[name].copy_(tensor)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        torch.set_rng_state(state["torch_rng"])
        return state["progress"]


def _prepared(path: str | None):
    from benchmarks.teacher.teacher_common import prepared

    return prepared(path)


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start
