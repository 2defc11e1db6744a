"""Which teacher positions to distil: per-instance reliability, an option beside DLLM2Rec's weights.

DLLM2Rec distils every exported position and only reweights the teacher's items within a position
(position, confidence, consistency: ``distill/losses.py``). A teacher that is often wrong still pulls the
student towards its lists at every position. ``distill.kd.reliability`` keeps a position only where the
teacher is likely right there, and drops the rest before training (the position then has no teacher row,
so no weight can reach it):

* ``none``: every exported position (DLLM2Rec).
* ``teacher_hit``: the teacher's top-K list holds the item the user actually chose next at that training
  position. Training targets are known, so this uses no validation or test data; it keeps the positions
  where the teacher's list is evidence about this user, and drops the ones where it ranked other items.
* ``teacher_buckets``: the target's popularity bucket (head / torso / tail / new, ``evaluation/buckets.py``)
  is one where the teacher check measured the teacher above the student on validation candidates
  (``teacher_check`` in the export's manifest). Per-bucket, not per-user: it follows where the LLM is known
  to help (rare and new items) and leaves the rest to the student's own loss.
"""

from __future__ import annotations

import numpy as np

from recdistill.errors import ConfigError
from recdistill.evaluation.buckets import cut_points

RULES = ("none", "teacher_hit", "teacher_buckets")
POPULARITY_BUCKETS = ("head", "torso", "tail", "new")


def target_buckets(targets: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """The popularity bucket name of each target item (by its number of training interactions)."""
    c = np.asarray(counts)[np.asarray(targets, dtype=np.int64)]
    tail_max, head_min = cut_points(counts)
    return np.select([c == 0, c <= tail_max, c >= head_min], ["new", "tail", "head"], default="torso")


def teacher_better_buckets(check: dict | None) -> set[str]:
    """Buckets where the teacher check's teacher NDCG@10 is above the student's (on the same users)."""
    if not check or "student" not in check:
        raise ConfigError("distill.kd.reliability=teacher_buckets needs the teacher check with a student in the "
                          "export's manifest; export with export.teacher_check_users > 0 and a student checkpoint, "
                          "or choose distill.kd.reliability=none | teacher_hit")
    teacher, student = check["teacher"], check["student"]
    return {b for b in POPULARITY_BUCKETS if b in teacher and b in student
            and teacher[b]["ndcg@10"] > student[b]["ndcg@10"]}


def reliable(rule: str, teacher_items: np.ndarray, targets: np.ndarray, counts: np.ndarray | None = None,
             buckets: set[str] | None = None) -> np.ndarray:
    """bool ``[R]``: which of ``R`` teacher rows (``teacher_items[R, K]``, 0 = padding) to distil, given each
    row's training target (``targets[R]``)."""
    if rule not in RULES:
        raise ConfigError(f"distill.kd.reliability={rule!r} is not valid; choose one of: {', '.join(RULES)}")
    targets = np.asarray(targets, dtype=np.int64)
    if rule == "none":
        return np.ones(len(targets), dtype=bool)
    if rule == "teacher_hit":
        return (np.asarray(teacher_items) == targets[:, None]).any(1) & (targets > 0)
    return np.isin(target_buckets(targets, counts), sorted(buckets or ()))
