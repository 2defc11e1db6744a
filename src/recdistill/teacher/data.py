"""Samples, datasets and the data module of the teacher.

A sample is (user, history, target). Training samples are the user's training positions (as in the
export format: position p shows items ``[:p]`` and asks for item ``p``); validation and test use the
leave-one-out targets. Candidates are the target plus uniformly drawn unseen items: re-drawn each epoch
in training (seeded by seed, epoch and sample), fixed in validation and test (seeded by seed, split and
user). A template is drawn per training sample (``template_unit=batch``: one per training batch, as LLaRA /
iLoRA's collate function draws it); evaluation uses ``eval_template`` (a number), or with ``random`` one
drawn per prompt, seeded (LLaRA / iLoRA draw one at random in evaluation too).

All text is tokenized ahead by :class:`PromptEncoder`. History cuts in training are decided ahead too,
against the longest possible candidate block, so the counts logged at setup are exact.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import lightning as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from recdistill.data.prepared import PreparedData
from recdistill.evaluation.candidates import known_by, sample_candidates
from recdistill.teacher.prompt_encoder import PromptEncoder
from recdistill.errors import ConfigError
from recdistill.teacher.buckets import LengthBucketSampler
from recdistill.teacher.shuffle import EpochShuffle

SPLIT_IDS = {"train": 0, "val": 1, "test": 2}


@dataclass
class Samples:
    users: np.ndarray                 # [S]
    histories: list[np.ndarray]       # full history before the target, oldest first
    targets: np.ndarray               # [S]
    positions: np.ndarray             # training position p (or -1 for val/test)
    seen: list[np.ndarray] = field(default_factory=list)  # items never drawn as negatives (known by the target)


def train_samples(data: PreparedData, positions: str, last_n: int, users=None, min_history: int = 1) -> Samples:
    """Every training position ``p >= min_history`` of each user (``all``) or the last ``last_n`` of them
    (``last``). ``min_history``: ``teacher.data.min_history`` (LLaRA / iLoRA keep samples with at least 3)."""
    if positions not in ("all", "last"):
        raise ConfigError(f"teacher.data.train_positions={positions!r} is not valid; choose all or last")
    if int(min_history) < 1:
        raise ConfigError(f"teacher.data.min_history={min_history} is not valid; expected an integer >= 1")
    out_u, out_h, out_t, out_p, out_s = [], [], [], [], []
    for user in (users if users is not None else data.users()):
        seq = data.train[int(user)]
        first = max(int(min_history), 1 if positions == "all" else len(seq) - int(last_n))
        for p in range(first, len(seq)):
            out_u.append(int(user)); out_h.append(seq[:p]); out_t.append(int(seq[p])); out_p.append(p)
            out_s.append(seq)  # the whole training sequence counts as seen
    return Samples(np.array(out_u, dtype=np.int64), out_h, np.array(out_t, dtype=np.int64),
                   np.array(out_p, dtype=np.int64), out_s)


def eval_samples(data: PreparedData, split: str, users=None) -> Samples:
    out_u, out_h, out_t = [], [], []
    for user in (users if users is not None else data.users()):
        history = data.history(split, int(user))
        if len(history) == 0:
            continue
        out_u.append(int(user)); out_h.append(history); out_t.append(data.target(split, int(user)))
    seen = [known_by(h, t) for h, t in zip(out_h, out_t)]  # never a later split's target (no test leak into val)
    return Samples(np.array(out_u, dtype=np.int64), out_h, np.array(out_t, dtype=np.int64),
                   np.full(len(out_u), -1, dtype=np.int64), seen)


@dataclass
class PromptSettings:
    """``teacher.prompt`` (defaults: ``config/conf/teacher/ilora.yaml``; read and checked by
    ``recipes.teacher_settings.prompt_settings``) and the student's ``max_len``."""

    history_items: int                 # last N items shown
    num_candidates: int
    max_tokens: int | None             # None: no cut (lengths are still measured)
    eval_template: int | str           # a template number (0-based) or "random" (EVAL_TEMPLATE_RANDOM)
    seed: int
    student_len: int                   # history length fed to the student (its max_len)
    template_unit: str                 # training: sample = a template drawn per prompt; batch = one per batch

    def __post_init__(self):
        if self.template_unit not in TEMPLATE_UNITS:
            raise ConfigError(f"teacher.prompt.template_unit={self.template_unit!r} is not valid; choose one of: "
                              f"{', '.join(TEMPLATE_UNITS)}")


TEMPLATE_UNITS = ("sample", "batch")


def _seed(*parts: int) -> np.random.Generator:
    return np.random.default_rng([int(p) & 0xFFFFFFFF for p in parts])


EVAL_TEMPLATE_RANDOM = "random"


def evaluation_template(eval_template: int | str, num_templates: int, seed: int, *key: int) -> int:
    """The template of one evaluation prompt: ``eval_template``, or for ``random`` one drawn from a generator
    seeded by ``seed`` and ``key`` (split, user, ...), so a rerun shows every prompt the same template."""
    if eval_template != EVAL_TEMPLATE_RANDOM:
        return int(eval_template)
    return int(_seed(seed, 11, *key).integers(num_templates))


class PromptDataset(Dataset):
    """Prompts as token ids. ``train=True``: random template and fresh candidates per epoch (call
    :meth:`set_epoch`); otherwise fixed candidates and the eval template, with the answer attached so the
    same sample serves loss, scoring and generation."""

    def __init__(self, samples: Samples, encoder: PromptEncoder, num_items: int, settings: PromptSettings,
                 split: str, train: bool):
        self.samples, self.encoder, self.num_items, self.s = samples, encoder, num_items, settings
        self.split, self.train = split, train
        self.epoch = 0
        if settings.eval_template != EVAL_TEMPLATE_RANDOM and not 0 <= settings.eval_template < encoder.num_templates:
            raise ConfigError(f"teacher.prompt.eval_template={settings.eval_template} is not valid; the template "
                              f"file holds {encoder.num_templates} templates (0-based)")
        self.history_keep = self._plan_cuts()

    def __len__(self) -> int:
        return len(self.samples.users)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def _shown_history(self, i: int) -> np.ndarray:
        return self.samples.histories[i][-self.s.history_items:]

    def _plan_cuts(self) -> np.ndarray:
        """How many history items each sample keeps. Without ``max_tokens`` all are kept. In training the
        budget assumes the longest possible candidate block (candidates change per epoch); in evaluation
        it uses the sample's fixed candidates."""
        n = len(self)
        keep = np.array([len(self._shown_history(i)) for i in range(n)], dtype=np.int64)
        if self.s.max_tokens is None:
            return keep
        enc = self.encoder
        worst_block = enc.longest_candidate_block(self.s.num_candidates)
        worst_fixed = max(enc.fixed_length(t) for t in range(enc.num_templates))
        for i in range(n):
            history = self._shown_history(i)
            answer = len(enc.answer_ids(self.samples.targets[i]))
            if self.train:
                budget = int(self.s.max_tokens) - worst_fixed - worst_block - answer
            else:
                cands = self.candidates(i)
                budget = (int(self.s.max_tokens) - enc.fixed_length(self.template(i))
                          - enc.candidate_block_length(cands) - answer)
            if budget < 0:
                raise ConfigError(f"teacher.prompt.max_tokens={self.s.max_tokens} leaves no room even without "
                                  f"history (needs {int(self.s.max_tokens) - budget}); raise it")
            keep[i] = enc.fit_history(history, budget)
        return keep

    def cut_counts(self) -> dict:
        shown = np.array([len(self._shown_history(i)) for i in range(len(self))], dtype=np.int64)
        cut = shown - self.history_keep
        return {"prompts_cut": int((cut > 0).sum()), "history_items_cut": int(cut.sum()), "prompts": len(self)}

    def candidates(self, i: int) -> np.ndarray:
        if self.train:
            rng = _seed(self.s.seed, SPLIT_IDS[self.split], self.epoch, i)
        else:
            rng = _seed(self.s.seed, SPLIT_IDS[self.split], 1_000_003, int(self.samples.users[i]))
        return sample_candidates(rng, int(self.samples.targets[i]), self.samples.seen[i], self.num_items,
                                 self.s.num_candidates)

    def template(self, i: int) -> int:
        if not self.train:
            return evaluation_template(self.s.eval_template, self.encoder.num_templates, self.s.seed,
                                       SPLIT_IDS[self.split], int(self.samples.users[i]))
        rng = _seed(self.s.seed, 7, self.epoch, i)
        return int(rng.integers(self.encoder.num_templates))

    def batch_template(self, indices: list[int]) -> int:
        """The one template of a training batch (``template_unit=batch``), seeded by the epoch and the batch's
        sample indices, so a rerun draws the same."""
        return int(_seed(self.s.seed, 8, self.epoch, len(indices), *indices).integers(self.encoder.num_templates))

    def __getitems__(self, indices: list[int]) -> list[dict]:
        """A whole batch (PyTorch's DataLoader calls this with a batch's indices when it exists)."""
        if self.train and self.s.template_unit == "batch":
            template = self.batch_template(list(indices))
            return [self._prompt(i, template) for i in indices]
        return [self[i] for i in indices]

    def __getitem__(self, i: int) -> dict:
        return self._prompt(i, self.template(i))

    def _prompt(self, i: int, template: int) -> dict:
        cands = self.candidates(i)
        target = int(self.samples.targets[i])
        enc = self.encoder.encode(self._shown_history(i), cands, template, target=target,
                                  history_keep=int(self.history_keep[i]))
        student_seq = self.samples.histories[i][-self.s.student_len:]
        return {"input_ids": enc.input_ids, "item_slots": enc.item_slots, "answer_start": enc.answer_start,
                "student_seq": student_seq, "candidates": cands, "target": target,
                "target_index": int(np.flatnonzero(cands == target)[0]), "user": int(self.samples.users[i]),
                "position": int(self.samples.positions[i])}

    def token_lengths(self) -> np.ndarray:
        """Token lengths (prompt + answer) of every sample as encoded now, counted without encoding (whole-string
        prompts have to be encoded to be counted)."""
        enc = self.encoder
        if enc.tokenize == "whole_string":
            return self.lengths()
        out = np.empty(len(self), dtype=np.int64)
        for i in range(len(self)):
            history = self._shown_history(i)
            keep = int(self.history_keep[i])
            out[i] = (enc.fixed_length(self.template(i)) + enc.block_length(history[len(history) - keep:])
                      + enc.candidate_block_length(self.candidates(i)) + len(enc.answer_ids(self.samples.targets[i])))
        return out

    def lengths(self, limit: int | None = None) -> np.ndarray:
        """Token lengths (prompt + answer) of the samples as encoded now, for the run's logs."""
        count = len(self) if limit is None else min(limit, len(self))
        return np.array([len(self[i]["input_ids"]) for i in range(count)], dtype=np.int64)


def pad_left(seqs, length: int, value: int = 0) -> torch.Tensor:
    out = torch.full((len(seqs), length), value, dtype=torch.long)
    for row, seq in enumerate(seqs):
        if len(seq):
            seq = np.asarray(seq, dtype=np.int64)[-length:]
            out[row, length - len(seq):] = torch.from_numpy(seq.copy())
    return out


class PromptCollator:
    """Batches prompts, left-padded so every answer ends at the last column (the loss then needs logits
    for the last ``longest answer + 1`` columns only, not a 49k-way vocabulary at every prompt token).
    Labels hold the answer tokens, -100 elsewhere. The ``prompt_*`` tensors hold the prompts alone (also
    left-padded), for candidate scoring and generation."""

    def __init__(self, pad_id: int, student_len: int, with_prompts: bool):
        self.pad_id, self.student_len, self.with_prompts = pad_id, student_len, with_prompts

    def __call__(self, rows: list[dict]) -> dict:
        width = max(len(r["input_ids"]) for r in rows)
        batch = len(rows)
        input_ids = torch.full((batch, width), self.pad_id, dtype=torch.long)
        attention = torch.zeros((batch, width), dtype=torch.long)
        slots = torch.zeros((batch, width), dtype=torch.long)
        labels = torch.full((batch, width), -100, dtype=torch.long)
        for b, r in enumerate(rows):
            n = len(r["input_ids"])
            ids = torch.as_tensor(r["input_ids"])
            start = width - n  # left padding: every answer ends at the last column
            input_ids[b, start:] = ids
            attention[b, start:] = 1
            slots[b, start:] = torch.as_tensor(r["item_slots"])
            labels[b, start + r["answer_start"]:] = ids[r["answer_start"]:]
        out = {"input_ids": input_ids, "attention_mask": attention, "item_slots": slots, "labels": labels,
               "student_seq": pad_left([r["student_seq"] for r in rows], self.student_len),
               "candidates": torch.as_tensor(np.stack([r["candidates"] for r in rows])),
               "target_index": torch.tensor([r["target_index"] for r in rows]),
               "target": torch.tensor([r["target"] for r in rows]),
               "user": torch.tensor([r["user"] for r in rows]),
               "position": torch.tensor([r["position"] for r in rows])}
        if self.with_prompts:
            prompts = [r["input_ids"][: r["answer_start"]] for r in rows]
            pslots = [r["item_slots"][: r["answer_start"]] for r in rows]
            pw = max(len(p) for p in prompts)
            out["prompt_ids"] = pad_left(prompts, pw, self.pad_id)
            out["prompt_mask"] = pad_left([[1] * len(p) for p in prompts], pw, 0)
            out["prompt_slots"] = pad_left(pslots, pw, 0)
        return out


def batch_token_counts(batch: dict) -> dict:
    """Units for the StageMeter: all real tokens and the answer tokens that carry loss."""
    return {"tokens": int(batch["attention_mask"].sum()), "answer_tokens": int((batch["labels"] != -100).sum()),
            "samples": int(batch["input_ids"].shape[0])}


class TeacherDataModule(L.LightningDataModule):
    def __init__(self, data: PreparedData, encoder: PromptEncoder, settings: PromptSettings, train_batch_size: int,
                 eval_batch_size: int, loader_kwargs: dict, *, train_positions: str, last_n: int,
                 limit_users: int | None, length_bucket_batches: int, min_history: int):
        """``train_positions``, ``last_n``, ``limit_users``, ``length_bucket_batches``, ``min_history``:
        ``teacher.data`` (defaults: ``config/conf/teacher/ilora.yaml``)."""
        super().__init__()
        self.length_bucket_batches = int(length_bucket_batches)
        self.data, self.encoder, self.settings = data, encoder, settings
        self.train_batch_size, self.eval_batch_size = int(train_batch_size), int(eval_batch_size)
        self.loader_kwargs = {k: v for k, v in loader_kwargs.items() if k != "shuffle"}
        users = data.users()
        if limit_users is not None:
            users = users[: int(limit_users)]
        self.users = users
        num_items = data.num_items
        self.train_set = PromptDataset(train_samples(data, train_positions, last_n, users, min_history), encoder, num_items,
                                       settings, "train", train=True)
        self.val_set = PromptDataset(eval_samples(data, "val", users), encoder, num_items, settings, "val", train=False)
        self.test_set = PromptDataset(eval_samples(data, "test", users), encoder, num_items, settings, "test", train=False)
        if len(self.train_set) == 0:
            raise ConfigError("no training samples: every chosen user has fewer than 2 training items")
        pad = encoder.slot_id
        self.train_collate = PromptCollator(pad, settings.student_len, with_prompts=False)
        self.eval_collate = PromptCollator(pad, settings.student_len, with_prompts=True)

    def prompt_report(self) -> dict:
        """Measured lengths and cut counts, for the run's logs."""
        report = {}
        for name, ds in (("train", self.train_set), ("val", self.val_set), ("test", self.test_set)):
            lengths = ds.lengths(limit=2000)
            report[name] = {**ds.cut_counts(), "tokens_max": int(lengths.max()), "tokens_mean": round(float(lengths.mean()), 1),
                            "tokens_measured_on": int(len(lengths))}
        return report

    def train_dataloader(self):
        epoch = self.trainer.current_epoch if self.trainer is not None else 0
        self.train_set.set_epoch(epoch)
        if self.length_bucket_batches > 0:
            sampler = LengthBucketSampler(self.train_set, self.train_batch_size, self.settings.seed,
                                          self.length_bucket_batches)
            return DataLoader(self.train_set, batch_sampler=sampler, collate_fn=self.train_collate, **self.loader_kwargs)
        return DataLoader(self.train_set, batch_size=self.train_batch_size,
                          sampler=EpochShuffle(len(self.train_set), self.settings.seed, epoch),
                          collate_fn=self.train_collate, **self.loader_kwargs)

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=self.eval_batch_size, shuffle=False,
                          collate_fn=self.eval_collate, **self.loader_kwargs)

    def test_dataloader(self):
        return DataLoader(self.test_set, batch_size=self.eval_batch_size, shuffle=False,
                          collate_fn=self.eval_collate, **self.loader_kwargs)
