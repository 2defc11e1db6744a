"""``recdistill export``: a teacher's top-K and item embeddings, written by ``recdistill.teacher_outputs``.

``teacher=ilora`` / ``teacher=lora`` with ``teacher.adapter=<run>/adapter`` exports the LLM teacher
(:class:`recdistill.teacher_outputs.llm_ranker.LLMRanker`); ``teacher=student teacher.checkpoint=<ckpt>`` exports a
SASRec (or an ensemble of them) through the same format. The command takes no ``efficiency`` settings:
inference here runs on ``teacher.device`` with the batch size ``export.batch_size``, in ``export.devices``
processes on each of ``export.num_nodes`` machines (or as many as ``torchrun`` started).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from omegaconf import DictConfig, ListConfig, OmegaConf

from recdistill.config import check_positive
from recdistill.engine import StageTracker, describe_environment, measure_stage, resolve_device
from recdistill.engine.processes import launch_processes
from recdistill.engine.rundir import atomic_write_json, sha256_file
from recdistill.errors import ConfigError
from recdistill.teacher_outputs.build import (ExportSettings, check_fillable, check_student_paths, default_out_dir,
                                     export_files, student_ranker)
from recdistill.teacher_outputs.format import MANIFEST
from recdistill.teacher_outputs.llm_ranker import LLMRanker
from recdistill.hashing import stable_hash
from recdistill.evaluation.teacher_check import sentence, teacher_check
from recdistill.recipes.config import load_config
from recdistill.recipes.lifecycle import prepared_data
from recdistill.recipes.teacher import load_trained_teacher
from recdistill.recipes.teacher_settings import cache_dir, prompt_encoder, prompt_settings
from recdistill.student.checkpoint import load_student_for
from recdistill.teacher.checkpoint import WEIGHTS


@dataclass
class ExportResult:
    out_dir: Path        # the teacher-outputs folder (manifest.json, shards, embeddings)
    manifest: dict
    stages: list
    seconds: float
    environment: dict
    rank: int = 0        # this process's rank in a multi-process export (only rank 0 prints)


def export_settings(cfg: DictConfig) -> ExportSettings:
    return ExportSettings(**OmegaConf.to_container(cfg.export, resolve=True))


def teacher_checkpoints(teacher_cfg: DictConfig) -> list[str]:
    """``teacher.checkpoint`` as a list: one path, or a list of paths for an ensemble."""
    value = teacher_cfg.get("checkpoint")
    return [str(p) for p in value] if isinstance(value, (list, tuple, ListConfig)) else ([str(value)] if value else [])


def check_teacher_given(cfg: DictConfig) -> None:
    """The teacher to export is named: an adapter (LLM) or checkpoints (SASRec)."""
    if str(cfg.teacher.kind) == "student":
        check_student_paths(teacher_checkpoints(cfg.teacher))
    elif not cfg.teacher.get("adapter"):
        raise ConfigError("exporting an LLM teacher needs teacher.adapter=<teacher run>/adapter "
                          "(or teacher=student teacher.checkpoint=<ckpt> for a SASRec teacher)")


def llm_ranker(cfg: DictConfig, data, device: str | None = None) -> LLMRanker:
    """The LLM teacher of ``cfg.teacher.adapter`` as a ranker on ``device`` (default ``teacher.device``);
    prompts and LLM settings come from the adapter."""
    t = cfg.teacher
    check_teacher_given(cfg)
    adapter = Path(str(t.adapter)).expanduser()
    teacher, loaded, saved, meta = load_trained_teacher(adapter, data, cache_dir(cfg))
    teacher.to(device or resolve_device(str(t.device)))
    check_positive(t, "export.listed_candidates")
    encoder = prompt_encoder(loaded.tokenizer, data, saved["prompt"])
    settings = prompt_settings(saved["prompt"], int(teacher.student.max_len))
    identity_src = {"adapter_sha256": sha256_file(adapter / WEIGHTS), "llm": meta["llm"], "prompt": saved["prompt"],
                    "listed": int(t.export.listed_candidates), "score_norm": str(t.eval.score_norm),
                    "embeddings": bool(t.export.embeddings), **_pooling_identity(t)}
    identity = {"kind": "llm", "model": str(meta["llm"]["source"]), "adapter": str(adapter.resolve()),
                "config_hash": stable_hash(identity_src), **_ranking_identity(t)}
    return LLMRanker(teacher, encoder, settings, data.num_items, identity, listed=int(t.export.listed_candidates),
                     chunk_size=int(t.eval.candidate_batch_size), norm=str(t.eval.score_norm),
                     kv_cache=bool(t.eval.kv_cache),
                     embeddings=bool(t.export.embeddings), embedding_batch_size=int(t.export.embedding_batch_size),
                     seed=int(cfg.export.candidate_seed), progress=bool(cfg.export.progress_bar),
                     embedding_pooling=str(t.export.embedding_pooling),
                     ranking=str(t.export.ranking),
                     max_new_tokens=int(t.export.max_new_tokens))


def _pooling_identity(t) -> dict:
    """The pooling and the ranking join the export's identity only when they are not the default, so
    existing exports keep theirs."""
    pooling = str(t.export.embedding_pooling)
    ranking = str(t.export.ranking)
    out = {} if pooling == "mean" else {"embedding_pooling": pooling}
    if ranking != "likelihood":
        out.update({"ranking": ranking, "max_new_tokens": int(t.export.max_new_tokens)})
    return out


def _ranking_identity(t) -> dict:
    """A grounded export says so in its manifest's teacher: its scores are minus distances, which
    ``distill.kd.confidence=exp_neg_distance`` reads (likelihood exports keep the identity they had)."""
    ranking = str(t.export.ranking)
    return {} if ranking == "likelihood" else {"ranking": ranking}


def record_teacher_check(out_dir: Path, manifest: dict, ranker, data, users: int, student_checkpoint) -> dict:
    """The teacher against the student on shared validation candidates, into the manifest (atomically)."""
    student = load_student_for(student_checkpoint, data, "export.student_checkpoint")[0] if student_checkpoint else None
    check = teacher_check(ranker, data, users, student)
    print(sentence(check), flush=True)
    manifest = {**manifest, "teacher_check": check}
    atomic_write_json(Path(out_dir) / MANIFEST, manifest)
    return manifest


def run_export(cfg: DictConfig) -> ExportResult:
    """Validate everything, then (with ``export.devices`` / ``num_nodes`` > 1, or under torchrun) start the
    processes, build the teacher on each one's device and write this process's share of the export."""
    settings = export_settings(cfg)
    settings.check()
    kind = str(cfg.teacher.kind)
    check_teacher_given(cfg)
    data = prepared_data(cfg)
    exclude_seen = bool(cfg.teacher.get("exclude_seen", True))  # only teacher=student has the key; an LLM never ranks seen items
    teacher_proposes = kind == "student" and not settings.student_checkpoint  # its own top-M are the candidates
    check_fillable(settings, data, exclude_seen, candidates_exclude_seen=exclude_seen if teacher_proposes else True)
    processes, device = launch_processes(settings.devices, settings.num_nodes, resolve_device(str(cfg.teacher.device)))
    if kind == "student":
        ranker = student_ranker(teacher_checkpoints(cfg.teacher), data, bool(cfg.teacher.exclude_seen), device)
    else:
        ranker = llm_ranker(cfg, data, device)
    out_dir = Path(settings.out_dir).expanduser() if settings.out_dir else default_out_dir(cfg.paths.runs_dir,
                                                                                          cfg.dataset.name, ranker)
    tracker = StageTracker(warmup_steps=0)
    start = time.perf_counter()
    with measure_stage(tracker, "export") as stage:
        manifest = export_files(settings, ranker, data, out_dir, processes)
        stage.add({"rows": sum(s["rows"] for s in manifest["shards"]), "processes": processes.world_size})
    check_users = int(cfg.get("teacher_check_users") or 0)
    if check_users > 0 and processes.rank == 0 and "teacher_check" not in manifest:
        with measure_stage(tracker, "teacher_check"):
            manifest = record_teacher_check(out_dir, manifest, ranker, data, check_users, settings.student_checkpoint)
    seconds = time.perf_counter() - start
    return ExportResult(out_dir, manifest, tracker.records, seconds, describe_environment(), processes.rank)


def print_export(result: ExportResult) -> None:
    if result.rank != 0:
        return
    m = result.manifest
    rows = sum(s["rows"] for s in m["shards"])
    shards = len(m["shards"])
    print(f"exported {rows} rows in {shards} shard{'s' if shards != 1 else ''} (top_k={m['top_k']}) in {result.seconds:.1f} s "
          f"to {result.out_dir}")


def export_command(args) -> int:
    print_export(run_export(load_config("export", args.overrides, args.config)))
    return 0
