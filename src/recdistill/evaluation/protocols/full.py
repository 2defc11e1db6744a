"""The full-catalogue ranking: the target against every item (``<split>/ndcg@10``). Computed by the
student's LightningModule (:mod:`recdistill.evaluation.ranking`) in every evaluation; ``eval.protocol=full``."""

from __future__ import annotations

from recdistill.evaluation.protocols.notes import default_notes
from recdistill.evaluation.protocols.registry import DEFAULT, Protocol, register


def _about(context: dict) -> str:
    seen = ("items the user has already seen are excluded" if bool(context["eval"].get("exclude_seen", True))
            else "seen items stay in the ranking")
    return f"The target against every item of the catalogue; {seen}."


FULL = register(Protocol(
    name=DEFAULT, prefix="", title="Full-catalogue ranking", about=_about,
    rows=r"(?:hr|ndcg|mrr)@(?:10|20)",  # recall@k equals hr@k with one relevant item: the appendix has it
    notes=default_notes("", "users"), order=0))
