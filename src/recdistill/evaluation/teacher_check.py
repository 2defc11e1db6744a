"""Is the teacher worth listening to? Checked before any distillation run: the teacher and the student rank
the same validation candidate sets (the shared drawer: each user's validation target among 20 items, the
negatives avoiding everything the user has seen), overall and per popularity bucket of the target, with 95 %
t intervals over users. ``recdistill export`` writes the result into the export's manifest
(``teacher_check``) and ``recdistill report`` shows it first in the distillation section.

The teacher is any export ranker (the LLM, or a SASRec teacher); the student is the one the export reads its
candidates from (``export.student_checkpoint``), when there is one.
"""

from __future__ import annotations

import numpy as np
import torch

from recdistill.evaluation.buckets import BUCKETS, bucket_masks
from recdistill.evaluation.chance import chance_ndcg
from recdistill.evaluation.candidates import CandidateProtocol, draw_candidate_sets
from recdistill.evaluation.intervals import mean_ci95
from recdistill.evaluation.student_scores import student_scores

NUM_CANDIDATES = 20


def _ranks_from_lists(ranked: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """0-based position of each target in its ranked list (the list's length when it is missing)."""
    out = np.full(len(targets), ranked.shape[1], dtype=np.int64)
    for i, (row, target) in enumerate(zip(ranked, targets)):
        hit = np.flatnonzero(row == target)
        if len(hit):
            out[i] = int(hit[0])
    return out


def _summary(ranks: np.ndarray, masks: dict) -> dict:
    ndcg = np.where(ranks < 10, 1.0 / np.log2(ranks + 2.0), 0.0)
    out = {}
    for name, mask in [("all", np.ones(len(ranks), dtype=bool))] + [(b, masks[b].numpy()) for b in BUCKETS]:
        if mask.any():
            mean, half = mean_ci95(ndcg[mask])
            out[name] = {"ndcg@10": round(mean, 5), "ci95_low": None if np.isnan(half) else round(mean - half, 5),
                         "ci95_high": None if np.isnan(half) else round(mean + half, 5), "users": int(mask.sum())}
    return out


@torch.no_grad()
def teacher_check(ranker, data, users: int, student=None, batch_size: int = 8) -> dict:
    """Both models on the first ``users`` validation users' candidate sets."""
    protocol = CandidateProtocol(history_items=10, num_candidates=NUM_CANDIDATES, exclude="all", draws=1, seed=0,
                                 limit_users=int(users))
    sets = draw_candidate_sets(data, "val", protocol, draw=0)
    ranked = []
    for start in range(0, len(sets.users), batch_size):
        rows = list(range(start, min(start + batch_size, len(sets.users))))
        cands = sets.candidates[rows]
        # rankers leave out the history's items (a target the user consumed before is one) and the drawer's
        # 0 padding (a small catalogue), so ask each batch for what every row still has
        k = min(int(((row > 0) & ~np.isin(row, sets.histories[i])).sum()) for row, i in zip(cands, rows))
        items, _ = ranker.rank([sets.histories[i] for i in rows], cands, k)
        full = np.zeros((len(rows), NUM_CANDIDATES), dtype=np.int64)
        full[:, :k] = np.asarray(items)[:, :k]
        ranked.append(full)
    teacher_ranks = _ranks_from_lists(np.concatenate(ranked), sets.targets)
    masks = bucket_masks(torch.as_tensor(sets.targets), data.item_train_counts)
    out = {"users": int(len(sets.users)), "candidates": NUM_CANDIDATES, "split": "val",
           "chance_ndcg@10": round(chance_ndcg(NUM_CANDIDATES, 10), 5), "teacher": _summary(teacher_ranks, masks)}
    if student is not None:
        scores = student_scores(student, sets.histories, sets.candidates)
        target = scores.gather(1, torch.as_tensor(sets.target_index).view(-1, 1))
        student_ranks = (scores >= target).sum(1).numpy() - 1   # ties count against the target
        out["student"] = _summary(student_ranks, masks)
        diff = np.where(teacher_ranks < 10, 1.0 / np.log2(teacher_ranks + 2.0), 0.0) - \
            np.where(student_ranks < 10, 1.0 / np.log2(student_ranks + 2.0), 0.0)
        mean, half = mean_ci95(diff)
        out["teacher_minus_student"] = {"ndcg@10": round(mean, 5), "ci95_low": round(mean - half, 5),
                                        "ci95_high": round(mean + half, 5)}
    return out


def _value(x: dict, sign: str = "") -> str:
    """``0.260 [0.186, 0.335]``, or the value alone where one user gives no interval."""
    if x.get("ci95_low") is None or x["ci95_low"] != x["ci95_low"]:  # None or NaN
        return f"{x['ndcg@10']:{sign}.3f}"
    return f"{x['ndcg@10']:{sign}.3f} [{x['ci95_low']:{sign}.3f}, {x['ci95_high']:{sign}.3f}]"


def sentence(check: dict) -> str:
    """The report's first line about the teacher."""
    line = f"The teacher ranks validation candidates at NDCG@10 {_value(check['teacher']['all'])}"
    if "student" in check:
        line += (f" against the student's {_value(check['student']['all'])} (paired difference "
                 f"{_value(check['teacher_minus_student'], '+')})")
    line += f", on {check['users']} users x {check['candidates']} candidates (chance {check['chance_ndcg@10']:.3f})."
    if "student" in check and check["users"] > 1:
        d = check["teacher_minus_student"]
        if d["ci95_high"] < 0:
            line += (" The teacher ranks worse than the student here: distilling from it is unlikely to help, and a "
                     "weight validation gives it is likely noise.")
        elif d["ci95_low"] > 0:
            line += " The teacher is better than the student here: it has something to teach."
        else:
            line += " Whether the teacher is better than the student is within noise."
    return line
