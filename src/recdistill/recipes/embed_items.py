"""``recdistill embed-items``: every item's text through the frozen LLM, one vector per item, to a file.

The file is what lets a student score items without interactions (``distill.item_embeddings``), what the
content-only baseline ranks with, and what ``recdistill add-items`` extends for items added after training.
"""

from __future__ import annotations

import time
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from recdistill.config import check_choice, check_positive
from recdistill.engine.precision import explain_cpu_choice
from recdistill.recipes.config import load_config
from recdistill.recipes.lifecycle import prepared_data
from recdistill.recipes.teacher_settings import cache_dir
from recdistill.teacher.item_embeddings import write_item_embeddings
from recdistill.teacher.item_text import POOLINGS, TEXTS, catalogue_texts, embed_texts
from recdistill.teacher.llm import LLMSettings, load_llm


def validate_embed_config(cfg: DictConfig) -> None:
    check_choice(cfg, "embed.text", TEXTS)
    check_choice(cfg, "embed.pooling", POOLINGS)
    check_positive(cfg, "embed.batch_size")


def output_stem(cfg: DictConfig, dataset_name: str) -> Path:
    if cfg.embed.out:
        return Path(str(cfg.embed.out)).expanduser()
    return (Path(str(cfg.paths.runs_dir)).expanduser() / "item_embeddings"
            / f"{dataset_name}-{cfg.embed.text}-{cfg.embed.pooling}")


def embed_items(cfg: DictConfig) -> Path:
    validate_embed_config(cfg)
    announce_cpu_precision_for_inference(cfg)
    data = prepared_data(cfg)
    llm = load_llm(LLMSettings.from_dict(OmegaConf.to_container(cfg.llm, resolve=True)), cache_dir(cfg))
    texts = catalogue_texts(data.items, str(cfg.embed.text))
    start = time.perf_counter()
    emb = embed_texts(llm.model, llm.tokenizer, texts, str(cfg.embed.pooling), int(cfg.embed.batch_size),
                      bool(cfg.embed.progress_bar))
    emb[0] = 0.0
    seconds = time.perf_counter() - start
    meta = {"llm": str(cfg.llm.source), "llm_settings": OmegaConf.to_container(cfg.llm, resolve=True),
            "dtype": str(llm.dtype).replace("torch.", ""), "text": str(cfg.embed.text),
            "pooling": str(cfg.embed.pooling), "dataset": data.meta(), "seconds": round(seconds, 2),
            "seconds_per_item": round(seconds / max(data.num_items, 1), 4), "example": texts[1] if len(texts) > 1 else ""}
    return write_item_embeddings(output_stem(cfg, data.name), emb, meta)


def announce_cpu_precision_for_inference(cfg: DictConfig) -> None:
    """embed-items has no efficiency group: only llm.dtype=auto is left to the machine."""
    if str(cfg.llm.dtype) == "auto" and not torch.cuda.is_available():
        print(explain_cpu_choice(), flush=True)


def embed_command(args) -> int:
    path = embed_items(load_config("embed_items", args.overrides, args.config))
    print(f"item embeddings written: {path}")
    return 0
