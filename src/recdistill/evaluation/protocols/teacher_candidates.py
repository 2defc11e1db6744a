"""The teacher over its own candidates (``<split>/cand<N>_ndcg@10``): the target among N candidates it
was prompted with, iLoRA's protocol. Computed by the teacher's LightningModule
(``teacher.eval.protocol=likelihood``), so ``eval student`` does not run it."""

from __future__ import annotations

from recdistill.evaluation.chance import chance_hr, chance_ndcg
from recdistill.evaluation.protocols.notes import users_line
from recdistill.evaluation.protocols.registry import Protocol, register


def _notes(groups: dict, runs: list[tuple[str, dict]]) -> list[str]:
    """The teacher counts its own users; chance is exact for a random order of N candidates."""
    n = int(groups["n"])
    return [users_line(runs, f"cand{n}_users"),
            f"Chance (a random order of the {n} candidates): NDCG@10 {chance_ndcg(n, 10):.4f}, "
            f"HR@1 {chance_hr(n, 1):.4f}, HR@5 {chance_hr(n, 5):.4f}."]


TEACHER_CANDIDATES = register(Protocol(
    name="teacher_candidates", prefix=r"cand(?P<n>\d+)_", title="Teacher over its {n} candidates",
    about=lambda c: (f"The teacher ranks the target among {c['n']} candidates (the target and {int(c['n']) - 1} "
                     "others), the iLoRA protocol; not comparable with the full-catalogue numbers of the students."),
    rows=r"(?:hr|ndcg|mrr)@\d+", notes=_notes, order=2))
