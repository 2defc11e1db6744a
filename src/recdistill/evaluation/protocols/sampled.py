"""The sampled ranking of the SASRec paper: the target against N random unseen items
(``<split>/sampled<N>_ndcg@10``). Computed beside the full ranking when ``eval.sampled_negatives`` > 0."""

from __future__ import annotations

from recdistill.evaluation.protocols.notes import percent, recorded_chance_line, users_line
from recdistill.evaluation.protocols.registry import Protocol, register


def _notes(groups: dict, runs: list[tuple[str, dict]]) -> list[str]:
    """Users (the full ranking's), chance, and the users for whom the sampled protocol is the full ranking."""
    n, prefix = groups["n"], f"sampled{groups['n']}_"
    lines = [users_line(runs, "users"), recorded_chance_line(runs, prefix)]
    for label, metrics in runs:
        short, total = metrics.get(f"test/{prefix}short_users"), metrics.get("test/users")
        if short and total:
            what = ("all of them: here the sampled protocol **is** the full ranking (n/a)" if short >= total
                    else f"{percent(short / total)} of them: for those it is the full ranking")
            lines.append(f"{label}: {int(short)} of {int(total)} test users have fewer than {n} unseen items, {what}.")
    return lines


SAMPLED = register(Protocol(
    name="sampled", prefix=r"sampled(?P<n>\d+)_", title="Sampled ranking ({n} negatives)",
    about=("The target against {n} random items the user has not seen (the SASRec paper's protocol); "
           "easier than the full ranking, so never compare the two."),
    rows=r"(?:hr|ndcg|mrr)@(?:10|20)", notes=_notes, order=1))
