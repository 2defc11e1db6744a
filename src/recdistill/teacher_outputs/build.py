"""Build an export from plain settings: the SASRec ranker (``teacher=student``), the candidate source, the
position plan, then :func:`recdistill.teacher_outputs.writer.export_teacher_outputs`. The recipe
(``recipes/export.py``) reads the config and calls these; the LLM ranker is ``export/llm_ranker.py``.
"""

from __future__ import annotations

import os
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from recdistill.engine.processes import Processes
from recdistill.errors import ConfigError
from recdistill.teacher_outputs.format import PositionPlan, plan_positions
from recdistill.hashing import stable_hash
from recdistill.teacher_outputs.rankers import CandidateSource, Ranker, SASRecRanker
from recdistill.teacher_outputs.writer import export_teacher_outputs
from recdistill.student.checkpoint import load_student_for

CANDIDATES = ("student_top_m", "random", "all")
POSITIONS = ("all", "last")


@dataclass(frozen=True)
class ExportSettings:
    """The ``export`` config group, field for field (recorded whole in the manifest). No defaults here:
    they live in ``config/conf/export/default.yaml``."""

    out_dir: str | None
    positions: str
    last_n: int
    limit: int | None
    candidates: str
    num_candidates: int
    student_checkpoint: str | None
    candidate_seed: int
    top_k: int
    batch_size: int
    shard_rows: int
    progress_bar: bool
    devices: int
    num_nodes: int

    def check(self) -> None:
        for key in ("top_k", "batch_size", "shard_rows", "devices", "num_nodes"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"export.{key}={value!r} is not valid; expected a number > 0")


def check_student_paths(paths: list[str]) -> None:
    if not paths or not all(paths):
        raise ConfigError("teacher=student needs teacher.checkpoint=<a .ckpt from `recdistill train student`> "
                          "(or a list of them, teacher.checkpoint=[a.ckpt,b.ckpt], for an ensemble)")


def student_ranker(paths: list[str], data, exclude_seen: bool, device: str) -> SASRecRanker:
    """``teacher=student``: one SASRec checkpoint, or the ensemble of several, as a ranker."""
    check_student_paths(paths)
    models, members = [], []
    for path in paths:
        model, meta = load_student_for(path, data, "teacher checkpoint")
        models.append(model)
        members.append({"checkpoint": str(Path(os.path.expanduser(path)).resolve()), "model": meta["model_config"],
                        "epoch": meta.get("epoch")})
    # one checkpoint keeps the identity it always had, so its existing exports still resume
    identity = {**members[0], "exclude_seen": bool(exclude_seen)} if len(members) == 1 else {
        "ensemble": members, "exclude_seen": bool(exclude_seen)}
    return SASRecRanker(models, name=" + ".join(paths), config_hash=stable_hash(identity),
                        exclude_seen=bool(exclude_seen), device=device)


def default_out_dir(runs_dir: str, dataset_name: str, ranker: Ranker) -> Path:
    return Path(str(runs_dir)) / "teacher_outputs" / f"{dataset_name}-{ranker.identity()['config_hash'][:10]}"


def plan_for(settings: ExportSettings, data) -> PositionPlan:
    return plan_positions(data.train, str(settings.positions), int(settings.last_n),
                          None if settings.limit is None else int(settings.limit))


def check_fillable(settings: ExportSettings, data, exclude_seen: bool = True,
                   candidates_exclude_seen: bool = True) -> None:
    """Refuse, before anything is written, a ``top_k`` (or ``num_candidates``) that some planned row cannot
    fill: the row whose history holds the most distinct items leaves the fewest unseen candidates.
    ``exclude_seen``: the teacher never ranks a seen item; ``candidates_exclude_seen``: nor does whatever
    proposes the ``student_top_m`` candidates (a separate student always; a SASRec teacher as it is set)."""
    plan = plan_for(settings, data)
    if not len(plan):
        return
    last_row = np.r_[np.flatnonzero(np.diff(plan.users)), len(plan) - 1]  # each user's furthest position
    most_seen = max(len(np.unique(data.train[int(u)][: int(p)])) for u, p in
                    zip(plan.users[last_row], plan.positions[last_row]))
    unseen = data.num_items - most_seen
    top_k, m, mode = int(settings.top_k), int(settings.num_candidates), str(settings.candidates)
    if mode == "all":
        room = unseen if exclude_seen else data.num_items
        if top_k > room:
            raise ConfigError(f"export.top_k={top_k} but some rows have only {room} items left to rank (catalogue of "
                              f"{data.num_items}, up to {most_seen} already seen); lower export.top_k")
        return
    if mode == "student_top_m" and not candidates_exclude_seen:
        unseen = data.num_items
    if m > unseen and mode == "student_top_m":
        raise ConfigError(f"export.num_candidates={m} but some rows have only {unseen} unseen items (up to "
                          f"{most_seen} of {data.num_items} already seen); lower export.num_candidates")
    if top_k > min(m, unseen):
        raise ConfigError(f"export.top_k={top_k} is more than the {min(m, unseen)} candidates some rows have "
                          f"(export.num_candidates={m}, up to {most_seen} of {data.num_items} items already seen); "
                          "lower export.top_k or raise export.num_candidates")


def export_files(settings: ExportSettings, ranker: Ranker, data, out_dir: str | os.PathLike,
                 processes: Processes = Processes()) -> dict:
    """Plan the positions, build the candidate sets and write the export described by ``settings`` for the
    prepared dataset ``data`` (this process's share of it, with ``processes``). Returns the manifest."""
    settings.check()
    plan = plan_for(settings, data)
    student = None
    if str(settings.candidates) == "student_top_m":
        if isinstance(ranker, SASRecRanker) and not settings.student_checkpoint:
            student = ranker  # a SASRec teacher (or ensemble) proposes its own top-M
        elif settings.student_checkpoint:
            student, _ = load_student_for(settings.student_checkpoint, data, "export.student_checkpoint")
    candidates = CandidateSource(str(settings.candidates), data.num_items, int(settings.num_candidates),
                                 student=student, seed=int(settings.candidate_seed))
    dataset = {"name": data.name, "fingerprint": data.fingerprint, "num_items": data.num_items,
               "num_users": data.num_users}
    return export_teacher_outputs(ranker, data.train, dataset, out_dir, plan, candidates,
                                  top_k=int(settings.top_k), shard_rows=int(settings.shard_rows),
                                  batch_size=int(settings.batch_size), progress=bool(settings.progress_bar),
                                  extra={"export_config": asdict(settings)}, processes=processes)
