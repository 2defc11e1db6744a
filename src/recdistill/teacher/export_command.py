"""``recdistill export``: a teacher's top-K and item embeddings, written by ``recdistill.export``.

``teacher=ilora`` / ``teacher=lora`` with ``teacher.adapter=<run>/adapter`` exports the LLM teacher
(:class:`recdistill.teacher.ranker.LLMRanker`); ``teacher=student teacher.checkpoint=<ckpt>`` exports a
SASRec through the same format.
"""

from __future__ import annotations

import time
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from recdistill.config import check_positive, compose, config_hash
from recdistill.engine import StageTracker, describe_environment, measure_stage
from recdistill.errors import ConfigError
from recdistill.engine.rundir import sha256_file
from recdistill.export.from_config import default_out_dir, export_with_config, resolve_device, student_ranker
from recdistill.teacher.build import build_encoder, cache_dir, prepared_data, prompt_settings
from recdistill.teacher.checkpoint import WEIGHTS
from recdistill.teacher.commands import load_trained_teacher
from recdistill.teacher.ranker import LLMRanker


def llm_ranker(cfg: DictConfig, data) -> LLMRanker:
    """The LLM teacher of ``cfg.teacher.adapter`` as a ranker; prompts and LLM settings come from the adapter."""
    t = cfg.teacher
    if not t.get("adapter"):
        raise ConfigError("exporting an LLM teacher needs teacher.adapter=<teacher run>/adapter "
                          "(or teacher=student teacher.checkpoint=<ckpt> for a SASRec teacher)")
    adapter = Path(str(t.adapter)).expanduser()
    teacher, loaded, saved, meta = load_trained_teacher(adapter, data, cache_dir(cfg))
    teacher.to(resolve_device(str(t.device)))
    check_positive(t, "export.listed_candidates")
    encoder = build_encoder(loaded.tokenizer, data, saved.prompt)
    settings = prompt_settings(saved.prompt, teacher.student)
    identity_src = {"adapter_sha256": sha256_file(adapter / WEIGHTS), "llm": meta["llm"], "prompt": OmegaConf.to_container(saved.prompt),
                    "listed": int(t.export.listed_candidates), "score_norm": str(t.eval.score_norm),
                    "embeddings": bool(t.export.embeddings), **_pooling_identity(t)}
    identity = {"kind": "llm", "model": str(meta["llm"]["source"]), "adapter": str(adapter.resolve()),
                "config_hash": config_hash(identity_src)}
    return LLMRanker(teacher, encoder, settings, data.num_items, identity, listed=int(t.export.listed_candidates),
                     chunk_size=int(t.eval.candidate_batch_size), norm=str(t.eval.score_norm),
                     kv_cache=bool(t.eval.get("kv_cache", True)),
                     embeddings=bool(t.export.embeddings), embedding_batch_size=int(t.export.embedding_batch_size),
                     seed=int(cfg.export.candidate_seed), progress=bool(cfg.export.progress_bar),
                     embedding_pooling=str(t.export.get("embedding_pooling", "mean")))


def _pooling_identity(t) -> dict:
    """The pooling joins the export's identity only when it is not the default, so existing exports keep theirs."""
    pooling = str(t.export.get("embedding_pooling", "mean"))
    return {} if pooling == "mean" else {"embedding_pooling": pooling}


def run_export(cfg: DictConfig) -> dict:
    data = prepared_data(cfg)
    kind = str(cfg.teacher.get("kind", "llm"))
    ranker = student_ranker(cfg.teacher, cfg.export, data) if kind == "student" else llm_ranker(cfg, data)
    out_dir = Path(str(cfg.export.out_dir)).expanduser() if cfg.export.out_dir else default_out_dir(cfg, ranker)
    tracker = StageTracker(warmup_steps=0)
    start = time.perf_counter()
    with measure_stage(tracker, "export") as stage:
        manifest = export_with_config(cfg.export, ranker, data, out_dir)
        stage.add({"rows": sum(s["rows"] for s in manifest["shards"])})
    seconds = time.perf_counter() - start
    return {"out_dir": str(out_dir), "manifest": manifest, "stages": tracker.records, "seconds": seconds,
            "environment": describe_environment()}


def export(args) -> int:
    cfg = compose("export", args.overrides, args.config)
    result = run_export(cfg)
    m = result["manifest"]
    rows = sum(s["rows"] for s in m["shards"])
    shards = len(m["shards"])
    print(f"exported {rows} rows in {shards} shard{'s' if shards != 1 else ''} (top_k={m['top_k']}) in {result['seconds']:.1f} s "
          f"to {result['out_dir']}")
    return 0
