"""Runs of the same kind over several seeds: grouped, aggregated and compared in pairs.

Two runs are of the same kind when their resolved configs are equal once the seed, the run's name and the
paths are left out. Each group gets mean, sd and a 95 % interval per metric; every later group that shares
seeds with the first is compared with it seed by seed (``recdistill.report.aggregate``).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass

from recdistill.errors import RecdistillError
from recdistill.report.aggregate import ONE_SEED_NOTE, PairedComparison, compare_paired, summarize
from recdistill.report.runs import RunInfo
from recdistill.report.tables import _fmt, _metric_sort_key, is_main_metric, markdown_table

NOT_PART_OF_KIND = (("efficiency", "seed"), ("run",), ("paths",),
                    ("distill", "auto", "student_run"))   # each seed's own student run
# A run chosen by the weight search (it holds weight_selection.json) is the search's result: the weights it
# ended with are what validation chose for that seed, not settings that make it another kind of run.
CHOSEN_BY_SEARCH = (("distill", "kd", "weight"), ("distill", "ed", "gamma"))


def seed_of(run: RunInfo):
    return (run.config.get("efficiency") or {}).get("seed")


def kind_key(run: RunInfo) -> str:
    from recdistill.report.selection import SELECTION_FILE

    config = copy.deepcopy(run.config)
    chosen = CHOSEN_BY_SEARCH if (run.path / SELECTION_FILE).is_file() else ()
    for path in NOT_PART_OF_KIND + chosen:
        node = config
        for part in path[:-1]:
            node = node.get(part) or {}
        if isinstance(node, dict):
            node.pop(path[-1], None)
    return json.dumps(config, sort_keys=True, default=str)


@dataclass
class SeedGroup:
    label: str
    runs: list[RunInfo]

    @property
    def seeds(self) -> list:
        return [seed_of(run) for run in self.runs]

    def values(self, key: str) -> dict:
        """seed -> value of ``key`` for the runs that have it."""
        return {seed_of(r): r.numeric_metrics[key] for r in self.runs if key in r.numeric_metrics}


def group_by_kind(runs: list[RunInfo]) -> list[SeedGroup]:
    """Groups in the order of their first run. Two runs of one kind with the same seed are an error: they
    are repeats, and pairing by seed would be ambiguous."""
    groups: dict[str, SeedGroup] = {}
    for run in runs:
        group = groups.setdefault(kind_key(run), SeedGroup(run.kind or run.label, []))
        if seed_of(run) in group.seeds:
            other = next(r for r in group.runs if seed_of(r) == seed_of(run))
            raise RecdistillError(f"{run.path} and {other.path} have the same config and seed "
                                  f"{seed_of(run)}; give one of them")
        group.runs.append(run)
    for group in groups.values():
        if len(group.runs) > 1:
            group.label = f"{group.runs[0].kind or group.runs[0].label} (seeds {', '.join(map(str, group.seeds))})"
    return list(groups.values())


def has_seed_groups(groups: list[SeedGroup]) -> bool:
    return any(len(g.runs) > 1 for g in groups)


def _main_keys(groups: list[SeedGroup]) -> list[str]:
    keys = {k for g in groups for r in g.runs for k in r.numeric_metrics if is_main_metric(k)}
    return sorted(keys, key=_metric_sort_key)


def aggregate_table(group: SeedGroup) -> str:
    rows = []
    for key in _main_keys([group]):
        values = group.values(key)
        s = summarize(list(values.values()))
        interval = ONE_SEED_NOTE if s.low is None else f"{s.low:.4f} – {s.high:.4f}"
        rows.append([f"`{key}`", f"{s.mean:.4f}", interval, "–" if s.sd is None else f"{s.sd:.4f}", str(s.n),
                     ", ".join(_fmt(v) for v in values.values())])
    return markdown_table(["metric", "mean", "95 % interval of the mean", "sd", "seeds", "per seed"], rows)


def paired_table(baseline: SeedGroup, other: SeedGroup) -> str | None:
    rows = []
    for key in _main_keys([baseline, other]):
        a, b = baseline.values(key), other.values(key)
        if not set(a) & set(b):
            continue
        c: PairedComparison = compare_paired(a, b)
        d = c.difference
        rows.append([f"`{key}`", f"{d.mean:+.4f}", ONE_SEED_NOTE if d.low is None else f"{d.low:+.4f} – {d.high:+.4f}",
                     "–" if c.t_test_p is None else f"{c.t_test_p:.3g}",
                     "–" if c.sign_flip_p is None else f"{c.sign_flip_p:.3g}", f"{c.wins}/{len(c.seeds)}"])
    if not rows:
        return None
    return markdown_table(["metric", "mean difference", "95 % interval", "paired t-test p", "sign-flip p",
                           "better on"], rows)


def seeds_section(groups: list[SeedGroup]) -> list[str]:
    """Markdown lines of the "Over seeds" section (empty when no kind has more than one seed)."""
    if not has_seed_groups(groups):
        return []
    parts = ["## Over seeds", "",
             "Runs with the same config but for the seed are grouped. Mean, sample sd and the 95 % interval of the "
             "mean (Student t with n-1 degrees of freedom); with one seed no interval can be given.", ""]
    for group in groups:
        parts += [f"### {group.label}", "", aggregate_table(group), ""]
    base = groups[0]
    for other in groups[1:]:
        table = paired_table(base, other)
        if table:
            parts += [f"### {other.label} against {base.label}, paired by seed", "",
                      "Per-seed differences (this minus the first), their mean and 95 % t interval; the paired "
                      "t-test (two-sided) is the test; the exact sign-flip permutation test needs no normality "
                      "but cannot go below 2/2^n (0.25 with 3 seeds).", "", table, ""]
    return parts
