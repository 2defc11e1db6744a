"""Who ranks: the protocol every teacher implements for export, the candidate sets it ranks, and the
SASRec ranker (``teacher=student``: a trained, usually larger, SASRec checkpoint, or an ensemble of
several, as the teacher).

The writer (:mod:`recdistill.teacher_outputs.writer`) only talks to a :class:`Ranker`; an LLM teacher plugs in
by implementing the same three members.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np
import torch

from recdistill.data.sequences import left_pad_batch
from recdistill.errors import ConfigError

CANDIDATE_MODES = ("all", "student_top_m", "random")


@runtime_checkable
class Ranker(Protocol):
    """What the export writer needs from a teacher."""

    def identity(self) -> dict:
        """``{"kind": "llm" | "student", "model": str, "adapter": str | None, "config_hash": str}``,
        written to the manifest; a resumed export must report the same identity."""

    def rank(self, histories: list[np.ndarray], candidates: np.ndarray | None, top_k: int) -> tuple[np.ndarray, np.ndarray]:
        """Rank candidates for each history.

        Args:
            histories: per row, the items the teacher may see (chronological, item ids 1..N).
            candidates: ``[B, M]`` item ids to rank (0 = padding, never returned), or ``None`` for the
                whole catalogue minus each history's items.
            top_k: how many to return.

        Returns:
            ``items`` int ``[B, K']`` best first and their ``scores`` float ``[B, K']``, ``K' <= top_k``
            (fewer only when there are fewer candidates).
        """

    def item_embeddings(self) -> torch.Tensor | None:
        """``[num_items + 1, dim]`` float, row 0 zeros, or ``None`` when the teacher has none."""


def seen_mask(histories: list[np.ndarray], num_items: int) -> torch.Tensor:
    """bool ``[B, N+1]``: true for padding (column 0) and every item in the history."""
    mask = torch.zeros(len(histories), num_items + 1, dtype=torch.bool)
    mask[:, 0] = True
    for row, hist in enumerate(histories):
        if len(hist):
            mask[row, torch.from_numpy(np.array(hist, dtype=np.int64))] = True
    return mask


class SASRecRanker:
    """One trained SASRec, or an ensemble of several, as the teacher: scores the whole catalogue (or the
    given candidates) from the user representation at the last history position, and exports item
    embeddings.

    With several checkpoints the score of an item is the mean of the members' log-probabilities over the
    items a user may be recommended (a geometric mean of their softmax distributions), and the item
    embeddings are the members' embeddings side by side (``[N+1, sum of hidden sizes]``). With one it is
    that model's logits, as before; both give the same ranking and the same softmax confidences.

    Args:
        models: a ``recdistill.student.sasrec.SASRec`` (any size) or a list of them over the same catalogue.
        name: what the manifest calls the model (the checkpoint path or paths).
        config_hash: hash of the teacher's config (checkpoint identity + export settings).
        exclude_seen: never return an item the history already holds (the evaluation protocol does the
            same, so the teacher's list is about new items).
    """

    def __init__(self, models, name: str, config_hash: str, exclude_seen: bool = True, device: str = "cpu"):
        members = list(models) if isinstance(models, (list, tuple)) else [models]
        if not members:
            raise ConfigError("the SASRec teacher needs at least one checkpoint")
        counts = {int(m.num_items) for m in members}
        if len(counts) > 1:
            raise ConfigError(f"the teacher's checkpoints were trained on different catalogues (item counts "
                              f"{sorted(counts)}); every member of an ensemble must come from the same dataset")
        self.models = [m.eval().to(device) for m in members]
        self.name = name
        self.config_hash = config_hash
        self.exclude_seen = exclude_seen
        self.device = device

    @property
    def model(self):
        """The first (for one checkpoint, the only) member."""
        return self.models[0]

    @property
    def num_items(self) -> int:
        return int(self.model.num_items)

    def identity(self) -> dict:
        return {"kind": "student", "model": self.name, "adapter": None, "config_hash": self.config_hash}

    @torch.no_grad()
    def _logits(self, model, histories: list[np.ndarray]) -> torch.Tensor:
        seq = left_pad_batch(histories, int(model.max_len)).to(self.device)
        return model.score_all(model.user_representation(seq)).float().cpu()

    @torch.no_grad()
    def scores(self, histories: list[np.ndarray]) -> torch.Tensor:
        """Scores ``[B, N+1]`` over the catalogue (logits, or the members' mean log-probability); seen items
        (if excluded) and padding are ``-inf``."""
        mask = seen_mask(histories, self.num_items) if self.exclude_seen else _padding_only(len(histories), self.num_items)
        if len(self.models) == 1:
            return self._logits(self.model, histories).masked_fill(mask, float("-inf"))
        total = torch.zeros(mask.shape)
        for model in self.models:
            total += self._logits(model, histories).masked_fill(mask, float("-inf")).log_softmax(dim=1)
        return total / len(self.models)

    @torch.no_grad()
    def rank(self, histories, candidates, top_k):
        logits = self.scores(histories)
        if candidates is not None:
            cand = torch.as_tensor(np.asarray(candidates, dtype=np.int64))
            cand_scores = logits.gather(1, cand).masked_fill(cand == 0, float("-inf"))
            k = min(int(top_k), cand.shape[1])
            scores, idx = cand_scores.topk(k, dim=1)
            items = cand.gather(1, idx)
        else:
            k = min(int(top_k), self.num_items)
            scores, items = logits.topk(k, dim=1)
        if torch.isinf(scores).any():
            raise ConfigError(
                f"export.top_k={top_k} is more than the candidates left after removing seen items; "
                "lower export.top_k or raise export.num_candidates"
            )
        return items.numpy(), scores.numpy()

    @torch.no_grad()
    def item_embeddings(self) -> torch.Tensor:
        emb = torch.cat([m.all_item_embeddings().detach().float().cpu() for m in self.models], dim=1)
        emb[0] = 0.0
        return emb


def _padding_only(rows: int, num_items: int) -> torch.Tensor:
    mask = torch.zeros(rows, num_items + 1, dtype=torch.bool)
    mask[:, 0] = True
    return mask


class CandidateSource:
    """The candidate set a teacher ranks at each row: ``all`` (whole catalogue), ``student_top_m`` (the
    student's top-M unseen items, what iLoRA/LLaRA-style teachers rank) or ``random`` (M unseen items
    drawn uniformly, seeded per row so a resumed export draws the same ones)."""

    def __init__(self, mode: str, num_items: int, m: int = 50, student=None, seed: int = 0):
        if mode not in CANDIDATE_MODES:
            raise ConfigError(f"export.candidates={mode!r} is not valid; choose one of: {', '.join(CANDIDATE_MODES)}")
        if mode != "all" and int(m) < 1:
            raise ConfigError(f"export.num_candidates={m!r} is not valid; expected an integer >= 1")
        if mode == "student_top_m" and student is None:
            raise ConfigError("export.candidates=student_top_m needs a student checkpoint (export.student_checkpoint)")
        self.mode, self.num_items, self.m, self.seed = mode, int(num_items), int(m), int(seed)
        if student is None or isinstance(student, SASRecRanker):
            self.student = student  # a SASRec teacher (one checkpoint or an ensemble) proposes its own top-M
        else:
            self.student = SASRecRanker(student, "candidates", "", exclude_seen=True)

    def describe(self) -> dict:
        return {"mode": self.mode, "m": None if self.mode == "all" else self.m, "seed": self.seed}

    def __call__(self, histories: list[np.ndarray], users: np.ndarray, positions: np.ndarray) -> np.ndarray | None:
        if self.mode == "all":
            return None
        if self.mode == "student_top_m":
            return self.student.rank(histories, None, self.m)[0]
        out = np.zeros((len(histories), self.m), dtype=np.int64)
        for row, (hist, user, pos) in enumerate(zip(histories, users, positions)):
            rng = np.random.default_rng([self.seed, int(user), int(pos)])
            pool = np.setdiff1d(np.arange(1, self.num_items + 1), hist)
            take = min(self.m, len(pool))
            out[row, :take] = rng.choice(pool, size=take, replace=False)
        return out
