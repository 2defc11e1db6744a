"""Config-driven export, so ``recdistill export`` (``teacher/export_command.py``) stays thin: it builds a
ranker (an LLM, or :func:`student_ranker` for ``teacher=student``) and calls :func:`export_with_config`.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from omegaconf import DictConfig, ListConfig, OmegaConf

from recdistill.config import check_positive, config_hash
from recdistill.errors import ConfigError, RecdistillError
from recdistill.export.format import plan_positions
from recdistill.export.rankers import CandidateSource, Ranker, SASRecRanker
from recdistill.export.writer import export_teacher_outputs


def _check_student_matches(meta: dict, data, what: str) -> None:
    fp = meta.get("dataset_fingerprint")
    if fp and data.fingerprint and fp != data.fingerprint:
        raise RecdistillError(
            f"the {what} {meta.get('path')} was trained on dataset fingerprint {fp}, but the prepared data at "
            f"{data.path} has {data.fingerprint}; train it on this dataset or choose the dataset it came from"
        )
    if int(meta["num_items"]) != data.num_items:
        raise RecdistillError(f"the {what} {meta.get('path')} has {meta['num_items']} items, the prepared data "
                              f"{data.num_items}; they do not belong to the same dataset")


def load_matching_student(path, data, what: str = "student checkpoint"):
    """``load_student(path)`` plus a check that it was trained on ``data``."""
    from recdistill.student.checkpoint import load_student

    if not path:
        raise ConfigError(f"no {what} given")
    model, meta = load_student(Path(os.path.expanduser(str(path))))
    _check_student_matches(meta, data, what)
    return model, meta


def resolve_device(setting: str) -> str:
    """``teacher.device``: auto (CUDA when visible) | cuda | cpu; asking for CUDA without one is an error."""
    if setting == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if setting == "cuda" and not torch.cuda.is_available():
        raise ConfigError("teacher.device=cuda but no CUDA device is visible; use teacher.device=auto or cpu")
    return str(setting)


def teacher_checkpoints(teacher_cfg: DictConfig) -> list[str]:
    """``teacher.checkpoint`` as a list: one path, or a list of paths for an ensemble."""
    value = teacher_cfg.get("checkpoint")
    paths = [str(p) for p in value] if isinstance(value, (list, tuple, ListConfig)) else ([str(value)] if value else [])
    if not paths or not all(paths):
        raise ConfigError("teacher=student needs teacher.checkpoint=<a .ckpt from `recdistill train student`> "
                          "(or a list of them, teacher.checkpoint=[a.ckpt,b.ckpt], for an ensemble)")
    return paths


def student_ranker(teacher_cfg: DictConfig, export_cfg: DictConfig, data) -> SASRecRanker:
    """``teacher=student``: the SASRec checkpoint ``teacher.checkpoint`` (or the ensemble of a list of
    checkpoints) as a ranker."""
    paths = teacher_checkpoints(teacher_cfg)
    models, members = [], []
    for path in paths:
        model, meta = load_matching_student(path, data, "teacher checkpoint")
        models.append(model)
        members.append({"checkpoint": str(Path(os.path.expanduser(path)).resolve()), "model": meta["model_config"],
                        "epoch": meta.get("epoch")})
    # one checkpoint keeps the identity it always had, so its existing exports still resume
    identity = {**members[0], "exclude_seen": bool(teacher_cfg.exclude_seen)} if len(members) == 1 else {
        "ensemble": members, "exclude_seen": bool(teacher_cfg.exclude_seen)}
    return SASRecRanker(models, name=" + ".join(paths),
                        config_hash=config_hash(identity), exclude_seen=bool(teacher_cfg.exclude_seen),
                        device=resolve_device(str(teacher_cfg.get("device", "auto"))))


def default_out_dir(cfg: DictConfig, ranker: Ranker) -> Path:
    return Path(str(cfg.paths.runs_dir)) / "teacher_outputs" / f"{cfg.dataset.name}-{ranker.identity()['config_hash'][:10]}"


def export_with_config(export_cfg: DictConfig, ranker: Ranker, data, out_dir: str | os.PathLike) -> dict:
    """Plan the positions, build the candidate sets and write the export described by ``export_cfg``
    (the ``export`` config group) for the prepared dataset ``data``. Returns the manifest."""
    for key in ("top_k", "batch_size", "shard_rows"):
        check_positive(export_cfg, key)
    plan = plan_positions(data.train, str(export_cfg.positions), int(export_cfg.last_n),
                          None if export_cfg.limit is None else int(export_cfg.limit))
    student = None
    if str(export_cfg.candidates) == "student_top_m":
        if isinstance(ranker, SASRecRanker) and not export_cfg.student_checkpoint:
            student = ranker  # a SASRec teacher (or ensemble) proposes its own top-M
        elif export_cfg.student_checkpoint:
            student, _ = load_matching_student(export_cfg.student_checkpoint, data, "export.student_checkpoint")
    candidates = CandidateSource(str(export_cfg.candidates), data.num_items, int(export_cfg.num_candidates),
                                 student=student, seed=int(export_cfg.candidate_seed))
    dataset = {"name": data.name, "fingerprint": data.fingerprint, "num_items": data.num_items,
               "num_users": data.num_users}
    settings = OmegaConf.to_container(export_cfg, resolve=True)
    return export_teacher_outputs(ranker, data.train, dataset, out_dir, plan, candidates,
                                  top_k=int(export_cfg.top_k), shard_rows=int(export_cfg.shard_rows),
                                  batch_size=int(export_cfg.batch_size), progress=bool(export_cfg.progress_bar),
                                  extra={"export_config": settings})
