"""Metric families by evaluation protocol: each gets its own table, under its protocol's name, with the
number of users it was measured on and what a random ranking would score.

Key shapes (``<split>/...``): ``ndcg@10`` full catalogue; ``sampled100_ndcg@10`` the target against 100
sampled unseen items; ``cand20_ndcg@10`` the teacher over its 20 candidates. ``*chance_*``, ``*users``
and ``*short_users`` describe a protocol and are shown in its note, not as rows.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from recdistill.evaluation.chance import chance_hr, chance_ndcg
from recdistill.report.format import percent
from recdistill.report.runs import RunInfo

_KEY = re.compile(r"^(?P<split>val|test)/(?P<family>sampled\d+_|cand\d+_)?(?P<name>hr|ndcg|recall|mrr)@(?P<k>\d+)$")


@dataclass(frozen=True)
class Family:
    id: str            # "full", "sampled100", "cand20"
    title: str
    about: str


def family_of(key: str) -> str | None:
    """The protocol of a ranking-metric key, or None for other keys (losses, counts, chance levels)."""
    m = _KEY.match(key)
    if not m:
        return None
    return (m["family"] or "full_").rstrip("_")


def is_main_row(key: str) -> bool:
    """Rows of a family's table: cut-offs 10 and 20 (every key of the teacher's short list); recall@k
    equals hr@k with one relevant item, so it stays in the appendix."""
    m = _KEY.match(key)
    return bool(m) and m["name"] != "recall" and (m["k"] in ("10", "20") or bool(m["family"] and m["family"].startswith("cand")))


def describe_family(fid: str, exclude_seen: bool = True) -> Family:
    if fid == "full":
        seen = "items the user has already seen are excluded" if exclude_seen else "seen items stay in the ranking"
        return Family(fid, "Full-catalogue ranking", f"The target against every item of the catalogue; {seen}.")
    if fid.startswith("sampled"):
        n = fid[len("sampled"):]
        return Family(fid, f"Sampled ranking ({n} negatives)",
                      f"The target against {n} random items the user has not seen (the SASRec paper's protocol); "
                      "easier than the full ranking, so never compare the two.")
    n = fid[len("cand"):]
    return Family(fid, f"Teacher over its {n} candidates",
                  f"The teacher ranks the target among {n} candidates (the target and {int(n) - 1} others), the "
                  "iLoRA protocol; not comparable with the full-catalogue numbers of the students.")


def _value(runs: list[RunInfo], key: str):
    """(run label, value) of the first run that has ``key``."""
    for run in runs:
        if key in run.numeric_metrics:
            return run.label, run.numeric_metrics[key]
    return None, None


def _prefix(fid: str) -> str:
    return "" if fid == "full" else fid + "_"


def family_note(fid: str, runs: list[RunInfo]) -> list[str]:
    """Sentences about the users each split was measured on, the chance level and, for the sampled
    protocol, the users for whom it is the full ranking."""
    p = _prefix(fid)
    lines = []
    users = []
    for run in runs:
        if not any(family_of(k) == fid for k in run.numeric_metrics):
            continue
        # the teacher counts its own users; the students' sampled protocol uses the same users as the full one
        keys = {split: f"{split}/{p if fid.startswith('cand') else ''}users" for split in ("val", "test")}
        counts = [f"{split} {int(run.numeric_metrics[key])}" for split, key in keys.items() if key in run.numeric_metrics]
        if counts:
            users.append(f"{run.label}: {', '.join(counts)}")
    lines.append("Users measured: " + ("; ".join(users) if users else "not recorded") + ".")
    if fid.startswith("cand"):
        n = int(fid[len("cand"):])
        lines.append(f"Chance (a random order of the {n} candidates): NDCG@10 {chance_ndcg(n, 10):.4f}, "
                     f"HR@1 {chance_hr(n, 1):.4f}, HR@5 {chance_hr(n, 5):.4f}.")
    else:
        label, ndcg = _value(runs, f"test/{p}chance_ndcg@10")
        _, hr = _value(runs, f"test/{p}chance_hr@10")
        if ndcg is not None:
            lines.append(f"Chance (a random ranking, test users of {label}): NDCG@10 {ndcg:.4f}, HR@10 {hr:.4f}.")
        else:
            lines.append("Chance level not recorded (runs written before it was).")
    if fid.startswith("sampled"):
        for run in runs:
            short, total = run.numeric_metrics.get(f"test/{p}short_users"), run.numeric_metrics.get("test/users")
            if short and total:
                n = fid[len("sampled"):]
                what = ("all of them: here the sampled protocol **is** the full ranking (n/a)" if short >= total
                        else f"{percent(short / total)} of them: for those it is the full ranking")
                lines.append(f"{run.label}: {int(short)} of {int(total)} test users have fewer than {n} unseen "
                             f"items, {what}.")
    return lines


def families(runs: list[RunInfo]) -> list[str]:
    """Family ids present in the runs, full catalogue first, then sampled, then the teacher's."""
    found = {f for run in runs for k in run.numeric_metrics if (f := family_of(k))}
    order = {"full": 0}
    return sorted(found, key=lambda f: (order.get(f, 1 if f.startswith("sampled") else 2), f))
