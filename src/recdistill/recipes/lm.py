"""``recdistill lm train | eval | generate``: the small causal LM's recipe, and the builder functions from
the composed config to the tokenizer, token files, model config and run name (the benchmarks call these
too, so both run the same recipe)."""

from __future__ import annotations

import gc
import json
import sys
import time
from pathlib import Path

import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig

from recdistill.config import check_choice, check_positive
from recdistill.engine import StageMeter, build_trainer, describe_environment
from recdistill.errors import ConfigError, RecdistillError
from recdistill.causal_lm.checkpoint import load_lm, resolve_checkpoint
from recdistill.causal_lm.corpus import corpus_name, load_corpus
from recdistill.causal_lm.evaluate import evaluate_fp32_and_int8
from recdistill.causal_lm.model import PRESETS, GPTConfig, preset_config
from recdistill.causal_lm.module import LMDataModule, LMModule, tokens_in_batch
from recdistill.causal_lm.progress import ProgressJSON, plot_curves
from recdistill.causal_lm.quantize import check_mode, quantize_int8
from recdistill.causal_lm.tokenizer import TOKENIZERS, load_tokenizer
from recdistill.causal_lm.tokens import TokenFile, TokenWindows, corpus_fingerprint, write_token_files
from recdistill.recipes.config import load_config
from recdistill.recipes.knobs import BATCH_SEARCH, check_knobs_take_effect
from recdistill.engine.resume import RandomStates, last_checkpoint_callback
from recdistill.recipes.lifecycle import (RunResult, efficiency, fit_checkpointed, open_run, optimizer_settings,
                                          records_run_state, refuse_resume, seed_run)

PHASES = ("pretrain", "finetune")
DEFAULT_CORPUS = {"pretrain": "shakespeare", "finetune": "chitchat"}
SHAPE_KNOBS = ("d_model", "n_layers", "n_heads", "context_length")


def validate_lm_config(cfg: DictConfig) -> None:
    if cfg.lm.preset not in PRESETS:  # checked first: before any corpus is fetched
        raise ConfigError(f"unknown lm.preset={cfg.lm.preset!r}; choose one of: {', '.join(PRESETS)}")
    check_choice(cfg, "lm.phase", PHASES)
    check_choice(cfg, "lm.tokenizer", TOKENIZERS)
    check_mode(str(cfg.lm.quantize))
    for key in ("train.max_steps", "train.batch_size", "train.eval_batch_size", "train.lr",
                "train.val_every_steps", "train.progress_every_steps"):
        check_positive(cfg, key)
    for key in ("train.limit_val_batches", "train.eval_max_batches", "lm.train_stride", *[f"lm.{k}" for k in SHAPE_KNOBS]):
        check_positive(cfg, key, allow=(None,))
    if cfg.lm.phase == "finetune" and not cfg.lm.init_from:
        raise ConfigError("lm.phase=finetune needs lm.init_from=<pretrain checkpoint or run folder>")


def resolve_corpus(cfg: DictConfig) -> str:
    corpus = str(cfg.lm.corpus)
    return DEFAULT_CORPUS[str(cfg.lm.phase)] if corpus == "auto" else corpus


def cache_dir(cfg: DictConfig) -> Path:
    return Path(str(cfg.paths.cache_dir)).expanduser()


def prepare_tokens(cfg: DictConfig, corpus: str, tokenizer, progress: bool = True) -> TokenFile:
    """The token folder for ``corpus`` under ``<data_dir>/lm/``, tokenized now if it does not exist."""
    val_fraction, seed = float(cfg.lm.val_fraction), int(cfg.lm.split_seed)
    fingerprint = corpus_fingerprint(corpus, tokenizer.name, val_fraction, seed)
    folder = Path(str(cfg.paths.data_dir)).expanduser() / "lm" / f"{corpus_name(corpus)}-{tokenizer.name}-{fingerprint}"
    if not (folder / "meta.json").is_file():
        docs = load_corpus(corpus, cache_dir(cfg))
        write_token_files(docs, tokenizer, folder, val_fraction, seed,
                          extra_meta={"corpus": corpus, "fingerprint": fingerprint}, progress=progress)
    return TokenFile(folder)


def build_tokenizer(cfg: DictConfig, name: str | None = None):
    return load_tokenizer(name or str(cfg.lm.tokenizer), cache_dir(cfg))


def model_config(cfg: DictConfig, vocab_size: int, base: GPTConfig | None = None) -> GPTConfig:
    """The model shape from the preset and knobs; for fine-tuning, ``base`` (the pretrained model's
    shape), where the shape knobs may only repeat the pretrained values."""
    lm = cfg.lm
    runtime = dict(dropout=float(lm.dropout), attention=str(lm.attention),
                   gradient_checkpointing=bool(cfg.efficiency.gradient_checkpointing),
                   uniform_dropout=bool(cfg.efficiency.uniform_dropout))
    if base is None:
        return preset_config(str(lm.preset), vocab_size, **{k: lm[k] for k in SHAPE_KNOBS}, **runtime)
    for knob in SHAPE_KNOBS:
        if lm[knob] is not None and lm[knob] != getattr(base, knob):
            raise ConfigError(
                f"lm.{knob}={lm[knob]} differs from the pretrained model's {getattr(base, knob)}; "
                f"fine-tuning keeps the pretrained shape, drop the lm.{knob} override"
            )
    return GPTConfig.from_dict({**base.to_dict(), **runtime})


def run_name(cfg: DictConfig, corpus: str, model_cfg: GPTConfig) -> str:
    """``lm_<corpus>_d<d_model>_l<n_layers>`` plus ``_finetune`` and ``_int8`` when they apply, unless
    ``run.name`` is set."""
    if cfg.run.get("name"):
        return str(cfg.run.name)
    name = f"lm_{corpus_name(corpus)}_d{model_cfg.d_model}_l{model_cfg.n_layers}"
    if cfg.lm.phase == "finetune":
        name += "_finetune"
    if cfg.lm.quantize == "int8":
        name += "_int8"
    return name


def _print_metrics(metrics: dict, folder) -> None:
    for key, value in metrics.items():
        print(f"{key:32s} {value:.4f}" if isinstance(value, float) else f"{key:32s} {value}")
    print(f"run folder: {folder}")


@records_run_state
def train_lm(cfg: DictConfig, extra_callbacks: list | None = None) -> RunResult:
    """The whole recipe; ``artefacts["checkpoint"]`` is the best checkpoint (lowest val loss)."""
    validate_lm_config(cfg)
    check_knobs_take_effect(cfg, "lm", "lm train", unused=BATCH_SEARCH)
    eff, tcfg = efficiency(cfg), cfg.train
    seed_run(cfg)
    corpus = resolve_corpus(cfg)

    base, init_meta = None, {}
    if cfg.lm.phase == "finetune":
        pretrained, init_meta = load_lm(cfg.lm.init_from)
        base = pretrained.cfg
        if init_meta.get("tokenizer") != cfg.lm.tokenizer:
            raise RecdistillError(
                f"the pretrained model used lm.tokenizer={init_meta.get('tokenizer')}, this run lm.tokenizer="
                f"{cfg.lm.tokenizer}; fine-tuning needs the same tokenizer"
            )
        model_config(cfg, base.vocab_size, base)  # shape knobs checked before any corpus is fetched
    tokenizer = build_tokenizer(cfg)
    tokens = prepare_tokens(cfg, corpus, tokenizer, progress=bool(cfg.run.progress_bar))
    model_cfg = model_config(cfg, tokens.vocab_size, base)
    data = LMDataModule(tokens, model_cfg.context_length, int(tcfg.batch_size), int(tcfg.eval_batch_size), eff,
                        cfg.lm.train_stride)

    meta = {"tokenizer": tokenizer.name, "corpus": corpus, "phase": str(cfg.lm.phase), "tokens": str(tokens.folder),
            "init_from": init_meta.get("checkpoint")}
    module = LMModule(model_cfg.to_dict(), optimizer_settings(cfg), eff, meta=meta, compile=bool(eff.compile))
    if base is not None:
        module.model.load_state_dict(pretrained.state_dict())
        del pretrained

    name = run_name(cfg, corpus, model_cfg)
    run = open_run(cfg, name)
    meter = StageMeter(items_fn=tokens_in_batch, unit="tokens", warmup_steps=int(eff.measure_warmup_steps))
    best = ModelCheckpoint(dirpath=run.checkpoints, filename="best", monitor="val/loss", mode="min", save_top_k=1,
                           auto_insert_metric_name=False, enable_version_counter=False)
    progress = ProgressJSON(run.path / "progress.json", int(tcfg.progress_every_steps), name, tokens_in_batch)
    accumulate = int(eff.accumulate_grad_batches)
    max_steps = int(tcfg.max_steps)
    trainer = build_trainer(
        eff, run, callbacks=[meter, best, last_checkpoint_callback(run.checkpoints), progress, RandomStates(),
                              *(extra_callbacks or [])], max_epochs=-1, max_steps=max_steps,
        limit_val_batches=tcfg.limit_val_batches, check_val_every_n_epoch=None,
        val_check_interval=min(int(tcfg.val_every_steps), max_steps) * accumulate,
        progress_bar=bool(cfg.run.progress_bar),
    )
    started = time.perf_counter()
    fit_checkpointed(trainer, module, run, cfg, datamodule=data)
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
    run.finish("lm", metrics, meter.records, describe_environment(),
               extra={"checkpoint": best.best_model_path, "name": name})
    return RunResult(run.path, metrics, meter.records, {"checkpoint": best_path}, {"name": name})


def train_command(args) -> int:
    cfg = load_config("lm", args.overrides, args.config, applied=True)
    result = train_lm(cfg)
    _print_metrics(result.metrics, result.run_dir)
    return 0


@records_run_state
def evaluate_command(args) -> int:
    """Perplexity on the validation split of the checkpoint's corpus (or ``lm.corpus=...``), fp32 and
    int8, with size on disk, peak memory and tokens per second. Writes a ``<name>_eval`` run folder."""
    cfg = load_config("lm", args.overrides, args.config)
    # The evaluation measures the checkpoint as it is: fp32 and int8 on the CPU, no Trainer.
    check_knobs_take_effect(cfg, "lm", "lm eval", used=())
    refuse_resume(cfg, "lm eval")
    ckpt = resolve_checkpoint(args.checkpoint)
    model, meta = load_lm(ckpt)
    context = model.cfg.context_length
    del model  # reloaded inside the evaluation, which must hold the only reference
    corpus = meta.get("corpus") if str(cfg.lm.corpus) == "auto" else str(cfg.lm.corpus)
    tokenizer = build_tokenizer(cfg, meta.get("tokenizer", "byte"))
    tokens = prepare_tokens(cfg, corpus, tokenizer, progress=bool(cfg.run.progress_bar))
    windows = TokenWindows(tokens.val, context, split="val")
    name = (cfg.run.name or f"{ckpt.parent.parent.name.split('_', 1)[-1]}") + "_eval"
    run = open_run(cfg, name)
    meter = StageMeter(unit="tokens")
    metrics = {"checkpoint_step": meta.get("global_step")}
    metrics.update(evaluate_fp32_and_int8(lambda: load_lm(ckpt)[0], windows, meter.tracker,
                                          int(cfg.train.eval_batch_size), cfg.train.eval_max_batches, int8=True,
                                          progress=bool(cfg.run.progress_bar)))
    run.finish("lm_eval", metrics, meter.records, describe_environment(),
               extra={"checkpoint": str(ckpt), "corpus": corpus})
    _print_metrics(metrics, run.path)
    return 0


def generate_command(args) -> int:
    """Sample text after ``--prompt`` (an empty prompt starts from the end-of-document token)."""
    if args.max_new_tokens <= 0:
        raise RecdistillError("--max-new-tokens must be > 0")
    if args.temperature < 0:
        raise RecdistillError("--temperature must be >= 0 (0 = always the most likely token)")
    model, meta = load_lm(args.checkpoint)
    cfg = load_config("lm")
    tokenizer = build_tokenizer(cfg, meta.get("tokenizer", "byte"))
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
