"""Candidate sets for the LLaRA / iLoRA evaluation protocol, drawn in ONE place for every model.

Each user's validation or test target is put among ``num_candidates - 1`` negatives drawn uniformly,
without replacement, from the items not in the history the prompt shows (the last ``history_items``
items; LLaRA's ``negative_sampling`` excludes only those and the target) or, with ``exclude="all"``,
from the items the user had not touched up to and including this split's target (a later split's target
is not known then, so a validation set does not depend on the test item). Draw ``d`` of user ``u`` on a split is seeded by
(seed, d, split, u), so the teacher and the student, which both call :func:`draw_candidate_sets`, score
exactly the same sets, and any rerun draws them again identically.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from recdistill.data.prepared import PreparedData
from recdistill.errors import ConfigError

EXCLUDE = ("shown", "all")
SPLIT_IDS = {"val": 1, "test": 2}


@dataclass
class CandidateProtocol:
    history_items: int = 10     # the history the prompt shows (LLaRA / iLoRA: 10)
    num_candidates: int = 20    # target + negatives (LLaRA / iLoRA: 20)
    exclude: str = "shown"      # shown = negatives avoid the shown history only (LLaRA); all = every seen item
    draws: int = 5              # seeded candidate draws the metrics are averaged over
    seed: int = 0
    limit_users: int | None = None  # the first N users with a history (None = all)

    def __post_init__(self):
        if self.exclude not in EXCLUDE:
            raise ConfigError(f"eval.candidates.exclude={self.exclude!r} is not valid; "
                              f"choose one of: {', '.join(EXCLUDE)}")
        for name in ("history_items", "num_candidates", "draws"):
            if int(getattr(self, name)) < 1:
                raise ConfigError(f"eval.candidates.{name}={getattr(self, name)} is not valid; expected >= 1")
        if self.limit_users is not None and int(self.limit_users) < 1:
            raise ConfigError(f"eval.candidates.limit_users={self.limit_users} is not valid; expected >= 1 or null")


@dataclass
class CandidateSets:
    split: str
    draw: int
    users: np.ndarray            # [N]
    histories: list[np.ndarray]  # each user's whole history before the target, oldest first
    targets: np.ndarray          # [N]
    candidates: np.ndarray       # [N, C], in the order the prompt lists them
    target_index: np.ndarray     # [N] position of the target in its row
    history_items: int

    def shown(self, i: int) -> np.ndarray:
        """The history the prompt shows (the newest ``history_items`` items)."""
        return self.histories[i][-self.history_items:]


def draw_candidate_sets(data: PreparedData, split: str, protocol: CandidateProtocol, draw: int) -> CandidateSets:
    if split not in SPLIT_IDS:
        raise ConfigError(f"candidate sets exist for val and test, not {split!r}")
    users, histories, targets, rows = [], [], [], []
    for user in data.users():
        history = data.history(split, int(user))
        if len(history) == 0:
            continue
        if protocol.limit_users is not None and len(users) >= int(protocol.limit_users):
            break
        target = int(data.target(split, int(user)))
        if protocol.exclude == "shown":
            seen = history[-protocol.history_items:]
        else:
            seen = known_by(history, target)
        rng = np.random.default_rng([int(protocol.seed), int(draw), SPLIT_IDS[split], int(user)])
        rows.append(sample_candidates(rng, target, seen, data.num_items, int(protocol.num_candidates)))
        users.append(int(user)); histories.append(np.asarray(history, dtype=np.int64)); targets.append(target)
    if not users:
        raise ConfigError(f"no user has a {split} history to evaluate")
    candidates = np.stack(rows)
    targets_arr = np.array(targets, dtype=np.int64)
    target_index = np.argmax(candidates == targets_arr[:, None], axis=1)
    return CandidateSets(split, int(draw), np.array(users, dtype=np.int64), histories, targets_arr, candidates,
                         target_index, int(protocol.history_items))


def known_by(history: np.ndarray, target: int) -> np.ndarray:
    """Every item the user touched up to and including this split's target. Never a later split's target:
    validation sets drawn knowing the test item could never hold it as a negative (a leak of the test split
    into model selection)."""
    return np.append(np.asarray(history, dtype=np.int64), int(target))


def chance_metrics(num_candidates: int) -> dict[str, float]:
    """HR@1 and NDCG@10 of a ranking drawn uniformly at random over ``num_candidates`` candidates."""
    c = int(num_candidates)
    ndcg10 = sum(1.0 / np.log2(r + 2.0) for r in range(min(c, 10))) / c
    return {f"cand{c}_hr@1": 1.0 / c, f"cand{c}_ndcg@10": float(ndcg10)}


def sample_candidates(rng: np.random.Generator, target: int, seen: np.ndarray, num_items: int,
                      count: int = 20) -> np.ndarray:
    """``count`` candidates in random order: the target plus ``count - 1`` items drawn uniformly without
    replacement from items the user has not interacted with. If the user has seen almost the whole
    catalogue, the rest are drawn from seen items (never the target), so there are always ``count``."""
    if count < 2:
        raise ConfigError(f"teacher.prompt.num_candidates={count} is not valid; expected >= 2")
    if count > num_items:
        raise ConfigError(f"teacher.prompt.num_candidates={count} exceeds the catalogue size {num_items}")
    mask = np.ones(num_items + 1, dtype=bool)
    mask[0] = False
    mask[np.asarray(seen, dtype=np.int64)] = False
    mask[target] = False
    pool = np.flatnonzero(mask)
    need = count - 1
    if len(pool) >= need:
        negatives = rng.choice(pool, size=need, replace=False)
    else:
        rest = np.setdiff1d(np.arange(1, num_items + 1), np.append(pool, target))
        negatives = np.concatenate([pool, rng.choice(rest, size=need - len(pool), replace=False)])
    out = np.append(negatives, target).astype(np.int64)
    rng.shuffle(out)
    return out
