"""Which stage runs how often: one run per stage, or with ``--seeds`` one per seed where the seed matters.

With ``pipeline.seeds`` (``--seeds 0,1,2``) the student and the distilled student run once per seed. The
prepared data does not depend on the seed and is made once. The teacher and its export are costly and are
trained once, with the first seed (on the first seed's student); ``pipeline.teacher_per_seed=true`` trains
a teacher and an export per seed instead, each on its own seed's student. Each run is one *unit* with its
own manifest entry (``student@seed1``), so every seed is skipped when it is done.
"""

from __future__ import annotations

from dataclasses import dataclass

PER_SEED = ("student", "distill")          # what the seed changes
TEACHER_SIDE = ("teacher", "export")       # per seed only with pipeline.teacher_per_seed


@dataclass(frozen=True)
class Unit:
    stage: str                          # the stage (pipeline/stages.py) it runs
    seed: int | None                    # efficiency.seed it runs with; None: the stage's own config
    entry: str                          # its manifest entry: the stage name, or "<stage>@seed<N>"
    reads: tuple[tuple[str, str], ...]  # (stage, entry) of each earlier output it reads


def entry_name(stage: str, seed: int | None) -> str:
    return stage if seed is None else f"{stage}@seed{seed}"


def build_plan(order: tuple[str, ...], needs: dict[str, tuple[str, ...]], seeds: list[int] | None,
               teacher_per_seed: bool) -> list[Unit]:
    """Units in stage order (every seed of a stage before the next stage), so ``pipeline.until`` and
    ``--from`` keep meaning a stage."""
    if not seeds:
        return [Unit(s, None, s, tuple((n, n) for n in needs[s])) for s in order]
    first = seeds[0]

    def seeds_of(stage: str) -> list[int | None]:
        if stage in PER_SEED or (stage in TEACHER_SIDE and teacher_per_seed):
            return list(seeds)
        return [first] if stage in TEACHER_SIDE else [None]

    units = []
    for stage in order:
        for seed in seeds_of(stage):
            reads = []
            for need in needs[stage]:
                available = seeds_of(need)
                if seed is None:                 # prepare and the report read every seed's output
                    reads += [(need, entry_name(need, s)) for s in available]
                elif seed in available or available == [None]:
                    reads.append((need, entry_name(need, seed if seed in available else None)))
                else:                            # a seed's distillation reads the shared (first seed's) export
                    reads.append((need, entry_name(need, first)))
            units.append(Unit(stage, seed, entry_name(stage, seed), tuple(reads)))
    return units
