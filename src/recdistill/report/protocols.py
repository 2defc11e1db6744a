"""Metric families by evaluation protocol: each gets its own table, under its protocol's title, with the
number of users it was measured on and what a random ranking would score.

The families, their key shapes, titles and notes come from the protocols' registry
(:mod:`recdistill.evaluation.protocols`): e.g. ``<split>/ndcg@10`` full catalogue,
``sampled100_ndcg@10`` the sampled protocol, ``cand20_ndcg@10`` the teacher over its candidates,
``llara_student_cand20_ndcg@10`` LLaRA's candidate protocol. Counts and chance levels describe a
protocol and are shown in its note, not as rows.
"""

from __future__ import annotations

from dataclasses import dataclass

from recdistill.evaluation import protocols
from recdistill.report.runs import RunInfo


@dataclass(frozen=True)
class Family:
    id: str            # "full", "sampled100", "cand20", "llara"
    title: str
    about: str


def family_of(key: str) -> str | None:
    """The family id of a ranking-metric key, or None for other keys (losses, counts, chance levels)."""
    found = protocols.family_of(key)
    return found[1] if found else None


def is_main_row(key: str) -> bool:
    """Rows of a family's table (the protocol's own choice; the rest stays in the appendix)."""
    found = protocols.family_of(key)
    return bool(found) and found[0].is_row(key.partition("/")[2])


def describe_family(fid: str, eval_settings: dict | None = None) -> Family:
    """Title and sentence of a family; ``eval_settings``: the runs' ``eval`` config (exclude_seen, ...)."""
    protocol, groups = protocols.protocol_of_family(fid)
    about = (protocol.about({**groups, "eval": eval_settings or {}}) if callable(protocol.about)
             else protocol.about.format(**groups))
    return Family(fid, protocol.title.format(**groups), about)


def family_note(fid: str, runs: list[RunInfo]) -> list[str]:
    """The protocol's sentences about the runs that have this family's metrics (users, chance, ...)."""
    protocol, groups = protocols.protocol_of_family(fid)
    members = [(run.label, run.numeric_metrics) for run in runs
               if any(family_of(k) == fid for k in run.numeric_metrics)]
    return protocol.notes(groups, members) if protocol.notes else []


def families(runs: list[RunInfo]) -> list[str]:
    """Family ids present in the runs, in the registry's order (full catalogue first)."""
    found = {}
    for run in runs:
        for key in run.numeric_metrics:
            if (hit := protocols.family_of(key)) is not None:
                found[hit[1]] = hit[0].order
    return sorted(found, key=lambda f: (found[f], f))
