"""``recdistill train teacher`` and ``recdistill eval teacher``: the LLM teacher's recipe (iLoRA or plain
LoRA over a frozen student). :func:`train_teacher` returns the saved adapter; :func:`load_trained_teacher`
rebuilds a teacher from one (evaluation and export)."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from recdistill.config import check_choice, check_positive
from recdistill.engine.trainer import full_parameters
from recdistill.engine import StageMeter, build_trainer, dataloader_kwargs, describe_environment, resolve_accelerator
from recdistill.errors import ConfigError
from recdistill.recipes.config import load_config
from recdistill.recipes.knobs import BATCH_SEARCH, EVALUATION, check_knobs_take_effect
from recdistill.recipes.lifecycle import (RunResult, collect, efficiency, is_main_process, open_run,
                                          optimizer_settings, prepared_data, seed_run)
from recdistill.student.checkpoint import load_student_for
from recdistill.teacher.build import build_encoder, build_teacher
from recdistill.teacher.checkpoint import load_adapter_weights, read_adapter_meta, save_adapter
from recdistill.teacher.data import PromptSettings, TeacherDataModule, batch_token_counts
from recdistill.teacher.model import MODES, TeacherSpec
from recdistill.teacher.module import TeacherModule
from recdistill.teacher.molora import MoLoRAConfig


def cache_dir(cfg: DictConfig) -> str:
    return os.path.expanduser(str(cfg.paths.cache_dir))


def validate_teacher_config(cfg: DictConfig) -> None:
    """Check the ``teacher`` group of a composed config (keys named in full in the messages)."""
    t = cfg.teacher
    if str(t.kind) != "llm":
        raise ConfigError(f"teacher={t.kind} cannot be trained here; `recdistill train teacher` trains an LLM "
                          "teacher (teacher=ilora or teacher=lora)")
    check_choice(cfg, "teacher.mode", MODES)
    for key in ("lora.r", "lora.num_experts", "lora.alpha", "prompt.history_items", "prompt.num_candidates",
                "eval.candidate_batch_size", "eval.max_new_tokens"):
        check_positive(cfg, f"teacher.{key}")
    check_choice(cfg, "teacher.eval.method", ("likelihood", "generate", "both"))
    check_choice(cfg, "teacher.eval.score_norm", ("sum", "mean"))
    check_choice(cfg, "teacher.data.train_positions", ("all", "last"))
    if t.prompt.max_tokens is not None:
        check_positive(cfg, "teacher.prompt.max_tokens")
    if bool(cfg.efficiency.compile):
        # Not wired for the teacher yet: compiling a 30-layer LLM with per-sample gates takes many minutes
        # on a CPU and was not measured; refusing beats a knob that silently does nothing.
        raise ConfigError("efficiency.compile=true is not supported by the teacher yet; use efficiency.compile=false")
    check_positive(cfg, "train.batch_size")
    check_positive(cfg, "train.eval_batch_size")
    check_positive(cfg, "train.lr")


def checkpoint_monitor(cfg) -> str:
    """``train.monitor``, with ``auto`` resolved to ``val/cand<N>_ndcg@10``. A candidate metric named for
    another candidate count would never be logged (the checkpoint would silently never be selected), so
    it is an error."""
    n = int(cfg.teacher.prompt.num_candidates)
    monitor = str(cfg.train.monitor)
    if monitor == "auto":
        return f"val/cand{n}_ndcg@10"
    named = re.match(r"(?:val|test)/cand(\d+)_", monitor)
    if named and int(named.group(1)) != n:
        raise ConfigError(f"train.monitor={monitor} names metrics over {named.group(1)} candidates but "
                          f"teacher.prompt.num_candidates={n}; use train.monitor=auto or val/cand{n}_ndcg@10")
    return monitor


def teacher_spec(teacher_cfg: DictConfig) -> TeacherSpec:
    lora = teacher_cfg.lora
    num_experts = int(lora.num_experts) if str(teacher_cfg.mode) == "ilora" else 1
    return TeacherSpec(str(teacher_cfg.mode), MoLoRAConfig(int(lora.r), num_experts, float(lora.alpha),
                                                           float(lora.dropout), tuple(lora.target_modules)))


def effective_llm_config(llm_cfg: DictConfig, eff: DictConfig | None) -> dict:
    """The ``llm`` group (a plain dict) with ``efficiency.gradient_checkpointing`` folded in (either switch
    turns it on)."""
    merged = OmegaConf.to_container(llm_cfg, resolve=True)
    if eff is not None and bool(eff.gradient_checkpointing):
        merged["gradient_checkpointing"] = True
    return merged


def prompt_settings(prompt_cfg, student) -> PromptSettings:
    return PromptSettings(history_items=int(prompt_cfg["history_items"]),
                          num_candidates=int(prompt_cfg["num_candidates"]),
                          max_tokens=None if prompt_cfg["max_tokens"] is None else int(prompt_cfg["max_tokens"]),
                          eval_template=int(prompt_cfg["eval_template"]), seed=int(prompt_cfg["seed"]),
                          student_len=int(student.max_len))


def _datamodule(cfg: DictConfig, data, encoder, student) -> TeacherDataModule:
    accelerator = resolve_accelerator(cfg.efficiency.accelerator)
    t = cfg.teacher
    return TeacherDataModule(data, encoder, prompt_settings(t.prompt, student), int(cfg.train.batch_size),
                             int(cfg.train.eval_batch_size), dataloader_kwargs(efficiency(cfg), accelerator),
                             str(t.data.train_positions), int(t.data.last_n),
                             None if t.data.limit_users is None else int(t.data.limit_users))


def _steps_summary(records: list[dict]) -> dict:
    """Training seconds per optimizer-loop step: the fit stage minus the validation runs inside it."""
    index = next((i for i, r in enumerate(records) if r["stage"] == "fit"), None)
    if index is None or not records[index].get("steps"):
        return {}
    fit = records[index]
    # Records close in order, so the validations finished before fit are the ones inside it.
    validation = sum(r["seconds"] for r in records[:index] if r["stage"].startswith("validation_"))
    train_seconds = max(fit["seconds"] - validation, 0.0)
    return {"seconds_per_step": round(train_seconds / fit["steps"], 3), "train_steps": fit["steps"]}


def decoder_layer_classes(llm) -> set[type]:
    """The LLM's repeated blocks (transformers names them in ``_no_split_modules``, e.g. LlamaDecoderLayer):
    the units ``efficiency.strategy=fsdp`` shards one by one."""
    names = {n for m in llm.modules() for n in (getattr(type(m), "_no_split_modules", None) or [])}
    return {type(m) for m in llm.modules() if type(m).__name__ in names}


def train_teacher(cfg: DictConfig) -> RunResult:
    """Fine-tune the teacher; ``artefacts["adapter"]`` is the saved adapter folder."""
    validate_teacher_config(cfg)
    check_knobs_take_effect(cfg, "teacher", "train teacher", unused=BATCH_SEARCH)
    checkpoint_monitor(cfg)  # a bad monitor name fails here, before anything is loaded
    if not cfg.teacher.student_checkpoint:
        raise ConfigError("teacher.student_checkpoint is required: train a student first (`recdistill train student`) "
                          "and pass teacher.student_checkpoint=<run>/checkpoints/<file>.ckpt")
    seed_run(cfg)
    data = prepared_data(cfg)
    student, student_meta = load_student_for(cfg.teacher.student_checkpoint, data)
    llm_cfg = effective_llm_config(cfg.llm, cfg.efficiency)
    spec = teacher_spec(cfg.teacher)
    teacher, loaded = build_teacher(llm_cfg, spec, student, cache_dir(cfg),
                                    uniform_dropout=bool(cfg.efficiency.uniform_dropout))
    encoder = build_encoder(loaded.tokenizer, data, cfg.teacher.prompt.file)
    dm = _datamodule(cfg, data, encoder, student)
    run = open_run(cfg)
    report = dm.prompt_report()
    run.write_json("prompt_report.json", report)
    print(f"prompts: {json.dumps(report)}")

    module = TeacherModule(teacher, encoder, data.titles, optimizer_settings(cfg), efficiency(cfg),
                           OmegaConf.to_container(cfg.teacher.eval, resolve=True), int(cfg.teacher.prompt.num_candidates))
    meter = StageMeter(items_fn=batch_token_counts, unit="samples", warmup_steps=int(cfg.efficiency.measure_warmup_steps))
    validate = cfg.train.limit_val_batches != 0
    callbacks = [meter]
    ckpt_cb = None
    if bool(cfg.train.save_checkpoints):
        ckpt_cb = ModelCheckpoint(dirpath=str(run.checkpoints), filename="teacher-{epoch:02d}",
                                  monitor=checkpoint_monitor(cfg) if validate else None, mode="max", save_top_k=1,
                                  save_last=True)
        callbacks.append(ckpt_cb)
    trainer = build_trainer(efficiency(cfg), run, callbacks=callbacks, max_epochs=int(cfg.train.max_epochs),
                            max_steps=int(cfg.train.max_steps), limit_train_batches=cfg.train.limit_train_batches,
                            limit_val_batches=cfg.train.limit_val_batches, limit_test_batches=cfg.train.limit_test_batches,
                            check_val_every_n_epoch=int(cfg.train.check_val_every_n_epoch),
                            progress_bar=bool(cfg.run.progress_bar), reload_dataloaders_every_n_epochs=1,
                            fsdp_wrap=decoder_layer_classes(teacher.llm))
    trainer.fit(module, datamodule=dm)
    best = ckpt_cb.best_model_path if ckpt_cb is not None else ""
    if best:
        state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
        with full_parameters(trainer, writeback=True):
            module.load_state_dict(state, strict=False)
    metrics: dict = {}
    if validate:
        metrics.update(collect(trainer.validate(module, datamodule=dm, verbose=False)))
    if cfg.train.limit_test_batches != 0:
        metrics.update(collect(trainer.test(module, datamodule=dm, verbose=False)))
    adapter_dir = run.path / "adapter"
    with full_parameters(trainer):
        if is_main_process():  # DDP/FSDP children: rank 0 saves the adapter and records the run
            save_adapter(teacher, adapter_dir, {
                "llm": llm_cfg,
                "teacher": OmegaConf.to_container(cfg.teacher, resolve=True),
                "student_checkpoint": str(Path(str(cfg.teacher.student_checkpoint)).expanduser().resolve()),
                "dataset": {"name": data.name, "fingerprint": data.fingerprint, "num_items": data.num_items},
                "best_checkpoint": best or None,
            })
    if not is_main_process():
        return RunResult(run.path, metrics, meter.records, {"adapter": str(adapter_dir)}, {"prompt_report": report})
    metrics.update(_steps_summary(meter.records))
    run.finish("teacher", metrics, meter.records, describe_environment(),
               extra={"adapter": str(adapter_dir), "prompt_report": report, "student": student_meta.get("path")})
    return RunResult(run.path, metrics, meter.records, {"adapter": str(adapter_dir)}, {"prompt_report": report})


def load_trained_teacher(adapter: str | Path, data, cache: str, llm_overrides: dict | None = None):
    """Rebuild a trained teacher from an adapter folder: fresh base, same wrapping, saved tensors.
    Returns ``(teacher, loaded_llm, saved_teacher_settings (dict), meta)``."""
    meta = read_adapter_meta(adapter)
    data.check_matches(f"adapter {adapter}", meta.get("dataset", {}).get("fingerprint"))
    student, _ = load_student_for(meta["student_checkpoint"], data)
    spec = TeacherSpec.from_dict(meta["spec"])
    teacher, loaded = build_teacher({**meta["llm"], **(llm_overrides or {})}, spec, student, cache)
    load_adapter_weights(teacher, adapter)
    teacher.eval()
    return teacher, loaded, meta["teacher"], meta


def evaluate_teacher(cfg: DictConfig, adapter: str | Path) -> RunResult:
    check_knobs_take_effect(cfg, "teacher", "eval teacher", EVALUATION)
    seed_run(cfg)
    data = prepared_data(cfg)
    teacher, loaded, saved_teacher, meta = load_trained_teacher(adapter, data, cache_dir(cfg))
    # Evaluation settings come from this command's config; prompts from the adapter (what it was trained on).
    teacher_cfg = OmegaConf.merge(OmegaConf.create(saved_teacher), {"eval": OmegaConf.to_container(cfg.teacher.eval),
                                                                    "data": OmegaConf.to_container(cfg.teacher.data)})
    encoder = build_encoder(loaded.tokenizer, data, teacher_cfg.prompt.file)
    run = open_run(cfg, f"{cfg.run.name}-eval")
    eval_cfg = OmegaConf.merge(cfg, {"teacher": teacher_cfg})
    dm = _datamodule(eval_cfg, data, encoder, teacher.student)
    module = TeacherModule(teacher, encoder, data.titles, optimizer_settings(cfg), efficiency(cfg),
                           OmegaConf.to_container(teacher_cfg.eval, resolve=True), int(teacher_cfg.prompt.num_candidates))
    meter = StageMeter(items_fn=batch_token_counts, unit="samples")
    trainer = build_trainer(efficiency(cfg), run, callbacks=[meter], limit_val_batches=cfg.train.limit_val_batches,
                            limit_test_batches=cfg.train.limit_test_batches, progress_bar=bool(cfg.run.progress_bar))
    metrics = collect(trainer.validate(module, datamodule=dm, verbose=False))
    metrics.update(collect(trainer.test(module, datamodule=dm, verbose=False)))
    if is_main_process():  # DDP children share the folder; rank 0 records the run
        run.finish("teacher-eval", metrics, meter.records, describe_environment(), extra={"adapter": str(adapter)})
    return RunResult(run.path, metrics, meter.records, {"adapter": str(adapter)})


def print_teacher(result: RunResult, title: str) -> None:
    if not is_main_process():
        return
    print(f"\n{title}")
    for key, value in sorted(result.metrics.items()):
        print(f"  {key} = {value:.4f}" if isinstance(value, float) else f"  {key} = {value}")
    if result.artefacts.get("adapter"):
        print(f"  adapter: {result.artefacts['adapter']}")
    print(f"  run folder: {result.run_dir}")


def train_command(args) -> int:
    cfg = load_config("teacher", args.overrides, args.config, applied=True)
    result = train_teacher(cfg)
    print_teacher(result, f"teacher trained; metrics over the candidates (cand{int(cfg.teacher.prompt.num_candidates)}_*) "
                  "and generation (gen_*)")
    return 0


def evaluate_command(args) -> int:
    cfg = load_config("teacher", args.overrides, args.config)
    result = evaluate_teacher(cfg, args.adapter)
    print_teacher(result, f"teacher adapter {args.adapter}")
    return 0
