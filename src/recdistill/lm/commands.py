"""``recdistill lm train | eval | generate``."""

from __future__ import annotations

import gc
import json
import sys
import time

import torch
from lightning.pytorch.callbacks import ModelCheckpoint

from recdistill.config import compose
from recdistill.engine import RunDir, StageMeter, build_trainer, describe_environment, seed_everything
from recdistill.errors import RecdistillError
from recdistill.lm import build
from recdistill.lm.checkpoint import load_lm, resolve_checkpoint
from recdistill.lm.evaluate import evaluate_fp32_and_int8
from recdistill.lm.module import LMDataModule, LMModule, tokens_in_batch
from recdistill.lm.progress import ProgressJSON, plot_curves
from recdistill.lm.quantize import quantize_int8
from recdistill.lm.tokens import TokenWindows


def _print_metrics(metrics: dict, folder) -> None:
    for key, value in metrics.items():
        print(f"{key:32s} {value:.4f}" if isinstance(value, float) else f"{key:32s} {value}")
    print(f"run folder: {folder}")


def train_lm(cfg) -> tuple[RunDir, dict]:
    """The whole recipe; returns the run folder and its metrics. Used by the command and the tests."""
    build.validate(cfg)
    eff, tcfg = cfg.efficiency, cfg.train
    seed_everything(int(eff.seed), bool(eff.deterministic))
    corpus = build.resolve_corpus(cfg)

    base, init_meta = None, {}
    if cfg.lm.phase == "finetune":
        pretrained, init_meta = load_lm(cfg.lm.init_from)
        base = pretrained.cfg
        if init_meta.get("tokenizer") != cfg.lm.tokenizer:
            raise RecdistillError(
                f"the pretrained model used lm.tokenizer={init_meta.get('tokenizer')}, this run lm.tokenizer="
                f"{cfg.lm.tokenizer}; fine-tuning needs the same tokenizer"
            )
        build.model_config(cfg, base.vocab_size, base)  # shape knobs checked before any corpus is fetched
    tokenizer = build.build_tokenizer(cfg)
    tokens = build.prepare_tokens(cfg, corpus, tokenizer, progress=bool(cfg.run.progress_bar))
    model_cfg = build.model_config(cfg, tokens.vocab_size, base)
    data = LMDataModule(tokens, model_cfg.context_length, int(tcfg.batch_size), int(tcfg.eval_batch_size), eff,
                        cfg.lm.train_stride)

    meta = {"tokenizer": tokenizer.name, "corpus": corpus, "phase": str(cfg.lm.phase), "tokens": str(tokens.folder),
            "init_from": init_meta.get("checkpoint")}
    module = LMModule(model_cfg.to_dict(), tcfg, eff, meta=meta, compile=bool(eff.compile))
    if base is not None:
        module.model.load_state_dict(pretrained.state_dict())
        del pretrained

    name = build.run_name(cfg, corpus, model_cfg)
    run = RunDir.create(cfg.paths.runs_dir, name)
    run.write_config(cfg)
    meter = StageMeter(items_fn=tokens_in_batch, unit="tokens", warmup_steps=int(eff.measure_warmup_steps))
    best = ModelCheckpoint(dirpath=run.checkpoints, filename="best", monitor="val/loss", mode="min", save_top_k=1,
                           auto_insert_metric_name=False, enable_version_counter=False)
    progress = ProgressJSON(run.path / "progress.json", int(tcfg.progress_every_steps), name, tokens_in_batch)
    accumulate = int(eff.accumulate_grad_batches)
    max_steps = int(tcfg.max_steps)
    trainer = build_trainer(
        eff, run, callbacks=[meter, best, progress], max_epochs=-1, max_steps=max_steps,
        limit_val_batches=tcfg.limit_val_batches, check_val_every_n_epoch=None,
        val_check_interval=min(int(tcfg.val_every_steps), max_steps) * accumulate,
        progress_bar=bool(cfg.run.progress_bar),
    )
    started = time.perf_counter()
    trainer.fit(module, datamodule=data)
    train_seconds = time.perf_counter() - started
    plot_curves(progress.train_history, progress.val_history, run.path / "training_curves.png",
                title=f"{name}: {model_cfg.n_layers} layers, d={model_cfg.d_model}")

    if not best.best_model_path:
        raise RecdistillError("training ended before the first validation, so no checkpoint was kept; "
                              "lower train.val_every_steps or raise train.max_steps")
    val_windows = TokenWindows(tokens.val, model_cfg.context_length, split="val")
    metrics = {
        "train/seconds": round(train_seconds, 2),
        "train/steps": trainer.global_step,
        "train/tokens": progress.tokens,
        "train/final_loss": progress.train_history[-1][1] if progress.train_history else None,
        "best/step": progress.best[0] if progress.best else None,
    }
    best_path = best.best_model_path
    del trainer, module, data  # release the trained weights and optimizer state before memory is measured
    gc.collect()
    metrics.update(evaluate_fp32_and_int8(
        lambda: load_lm(best_path)[0], val_windows, meter.tracker, int(tcfg.eval_batch_size), tcfg.eval_max_batches,
        int8=cfg.lm.quantize == "int8", progress=bool(cfg.run.progress_bar)))
    run.finish("lm", cfg, metrics, meter.records, describe_environment(),
               extra={"checkpoint": best.best_model_path, "name": name})
    return run, metrics


def train(args) -> int:
    cfg = compose("lm", args.overrides, args.config)
    run, metrics = train_lm(cfg)
    _print_metrics(metrics, run.path)
    return 0


def evaluate(args) -> int:
    """Perplexity on the validation split of the checkpoint's corpus (or ``lm.corpus=...``), fp32 and
    int8, with size on disk, peak memory and tokens per second. Writes a ``<name>_eval`` run folder."""
    cfg = compose("lm", args.overrides, args.config)
    ckpt = resolve_checkpoint(args.checkpoint)
    model, meta = load_lm(ckpt)
    context = model.cfg.context_length
    del model  # reloaded inside the evaluation, which must hold the only reference
    corpus = meta.get("corpus") if str(cfg.lm.corpus) == "auto" else str(cfg.lm.corpus)
    tokenizer = build.build_tokenizer(cfg, meta.get("tokenizer", "byte"))
    tokens = build.prepare_tokens(cfg, corpus, tokenizer, progress=bool(cfg.run.progress_bar))
    windows = TokenWindows(tokens.val, context, split="val")
    name = (cfg.run.name or f"{ckpt.parent.parent.name.split('_', 1)[-1]}") + "_eval"
    run = RunDir.create(cfg.paths.runs_dir, name)
    run.write_config(cfg)
    meter = StageMeter(unit="tokens")
    metrics = {"checkpoint_step": meta.get("global_step")}
    metrics.update(evaluate_fp32_and_int8(lambda: load_lm(ckpt)[0], windows, meter.tracker,
                                          int(cfg.train.eval_batch_size), cfg.train.eval_max_batches, int8=True,
                                          progress=bool(cfg.run.progress_bar)))
    run.finish("lm_eval", cfg, metrics, meter.records, describe_environment(),
               extra={"checkpoint": str(ckpt), "corpus": corpus})
    _print_metrics(metrics, run.path)
    return 0


def generate(args) -> int:
    """Sample text after ``--prompt`` (an empty prompt starts from the end-of-document token)."""
    if args.max_new_tokens <= 0:
        raise RecdistillError("--max-new-tokens must be > 0")
    if args.temperature < 0:
        raise RecdistillError("--temperature must be >= 0 (0 = always the most likely token)")
    model, meta = load_lm(args.checkpoint)
    cfg = compose("lm", [])
    tokenizer = build.build_tokenizer(cfg, meta.get("tokenizer", "byte"))
    if args.int8:
        model = quantize_int8(model)
    ids = tokenizer.encode(args.prompt) if args.prompt else [tokenizer.eos_id]
    idx = torch.tensor([ids], dtype=torch.long)
    generator = torch.Generator().manual_seed(int(args.seed))
    started = time.perf_counter()
    out = model.generate(idx, args.max_new_tokens, temperature=args.temperature, top_k=args.top_k or None,
                         generator=generator)
    seconds = time.perf_counter() - started
    new = out[0, idx.size(1):].tolist()
    print(args.prompt + tokenizer.decode(new))
    print(json.dumps({"new_tokens": len(new), "seconds": round(seconds, 3),
                      "tokens_per_second": round(len(new) / seconds, 1) if seconds > 0 else None,
                      "int8": bool(args.int8)}), file=sys.stderr)
    return 0
