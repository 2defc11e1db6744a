"""``recdistill train teacher`` and ``recdistill eval teacher``: the LLM teacher's recipe (iLoRA or plain
LoRA over a frozen student). :func:`train_teacher` returns the saved adapter; :func:`load_trained_teacher`
rebuilds a teacher from one (evaluation and export)."""

from __future__ import annotations

import json
from pathlib import Path

from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from recdistill.engine.trainer import full_parameters
from recdistill.engine import StageMeter, build_trainer, dataloader_kwargs, describe_environment, resolve_accelerator
from recdistill.errors import ConfigError
from recdistill.evaluation.summary import summary_lines
from recdistill.recipes.config import load_config
from recdistill.recipes.knobs import BATCH_SEARCH, EVALUATION, check_knobs_take_effect
from recdistill.report.format import is_integer_metric
from recdistill.engine.checkpoint_files import read_checkpoint_file
from recdistill.engine.resume import RandomStates, last_checkpoint_callback
from recdistill.recipes.lifecycle import (RunResult, collect, efficiency, fit_checkpointed, is_main_process, open_run,
                                          optimizer_settings, prepared_data, records_run_state, refuse_resume, seed_run)
from recdistill.recipes.protocols import run_teacher_protocol, wants_teacher_protocol
from recdistill.recipes.teacher_settings import (announce_cpu_precision, cache_dir, checkpoint_monitor, curriculum,
                                                 effective_llm_config, prompt_encoder, prompt_settings,
                                                 teacher_eval_settings,
                                                 teacher_optim_settings, teacher_spec, validate_teacher_config)
from recdistill.student.checkpoint import load_student_for
from recdistill.teacher.build import build_teacher
from recdistill.teacher.checkpoint import load_adapter_weights, read_adapter_meta, save_adapter
from recdistill.teacher.data import TeacherDataModule, batch_token_counts
from recdistill.teacher.model import TeacherSpec
from recdistill.teacher.module import TeacherModule



def _datamodule(cfg: DictConfig, data, encoder, student) -> TeacherDataModule:
    accelerator = resolve_accelerator(cfg.efficiency.accelerator)
    t = cfg.teacher
    return TeacherDataModule(data, encoder, prompt_settings(t.prompt, int(student.max_len)), int(cfg.train.batch_size),
                             int(cfg.train.eval_batch_size), dataloader_kwargs(efficiency(cfg), accelerator),
                             train_positions=str(t.data.train_positions), last_n=int(t.data.last_n),
                             limit_users=None if t.data.limit_users is None else int(t.data.limit_users),
                             length_bucket_batches=int(t.data.length_bucket_batches),
                             min_history=int(t.data.min_history))


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


@records_run_state
def train_teacher(cfg: DictConfig, extra_callbacks: list | None = None) -> RunResult:
    """Fine-tune the teacher; ``artefacts["adapter"]`` is the saved adapter folder. ``extra_callbacks``
    join the Trainer's."""
    validate_teacher_config(cfg)
    check_knobs_take_effect(cfg, "teacher", "train teacher", unused=BATCH_SEARCH)
    checkpoint_monitor(cfg)  # a bad monitor name fails here, before anything is loaded
    if not cfg.teacher.student_checkpoint:
        raise ConfigError("teacher.student_checkpoint is required: train a student first (`recdistill train student`) "
                          "and pass teacher.student_checkpoint=<run>/checkpoints/<file>.ckpt")
    seed_run(cfg)
    announce_cpu_precision(cfg)
    data = prepared_data(cfg)
    student, student_meta = load_student_for(cfg.teacher.student_checkpoint, data)
    llm_cfg = effective_llm_config(cfg.llm, cfg.efficiency)
    spec = teacher_spec(cfg.teacher)
    teacher, loaded = build_teacher(llm_cfg, spec, student, cache_dir(cfg),
                                    uniform_dropout=bool(cfg.efficiency.uniform_dropout))
    encoder = prompt_encoder(loaded.tokenizer, data, cfg.teacher.prompt)
    dm = _datamodule(cfg, data, encoder, student)
    run = open_run(cfg)
    report = dm.prompt_report()
    run.write_json("prompt_report.json", report)
    print(f"prompts: {json.dumps(report)}")

    module = TeacherModule(teacher, encoder, encoder.titles, teacher_optim_settings(cfg), efficiency(cfg),
                           teacher_eval_settings(cfg.teacher.eval), int(cfg.teacher.prompt.num_candidates),
                           curriculum=curriculum(cfg.teacher))
    meter = StageMeter(items_fn=batch_token_counts, unit="samples", warmup_steps=int(cfg.efficiency.measure_warmup_steps))
    validate = cfg.train.limit_val_batches != 0
    callbacks = [meter, RandomStates(), *(extra_callbacks or [])]
    ckpt_cb = None
    if bool(cfg.train.save_checkpoints):
        ckpt_cb = ModelCheckpoint(dirpath=str(run.checkpoints), filename="teacher-{epoch:02d}",
                                  monitor=checkpoint_monitor(cfg) if validate else None, mode="max", save_top_k=1)
        callbacks += [ckpt_cb, last_checkpoint_callback(run.checkpoints)]
    trainer = build_trainer(efficiency(cfg), run, callbacks=callbacks, max_epochs=int(cfg.train.max_epochs),
                            max_steps=int(cfg.train.max_steps), limit_train_batches=cfg.train.limit_train_batches,
                            limit_val_batches=cfg.train.limit_val_batches, limit_test_batches=cfg.train.limit_test_batches,
                            check_val_every_n_epoch=int(cfg.train.check_val_every_n_epoch),
                            progress_bar=bool(cfg.run.progress_bar), reload_dataloaders_every_n_epochs=1,
                            fsdp_wrap=decoder_layer_classes(teacher.llm), llm=True)
    fit_checkpointed(trainer, module, run, cfg, datamodule=dm)
    best = ckpt_cb.best_model_path if ckpt_cb is not None else ""
    if best:
        state = read_checkpoint_file(best)["state_dict"]
        with full_parameters(trainer, writeback=True):
            module.load_state_dict(state, strict=False)
    metrics: dict = {}
    if validate:
        metrics.update(collect(trainer.validate(module, datamodule=dm, verbose=False)))
    if cfg.train.limit_test_batches != 0:
        metrics.update(collect(trainer.test(module, datamodule=dm, verbose=False)))
    if wants_teacher_protocol(cfg.teacher):
        metrics.update(run_teacher_protocol(cfg, cfg.teacher, teacher, encoder, data, run))
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


@records_run_state
def evaluate_teacher(cfg: DictConfig, adapter: str | Path) -> RunResult:
    check_knobs_take_effect(cfg, "teacher", "eval teacher", EVALUATION)
    refuse_resume(cfg, "eval teacher")
    evaluation = teacher_eval_settings(cfg.teacher.eval)  # checked before anything is loaded
    seed_run(cfg)
    data = prepared_data(cfg)
    teacher, loaded, saved_teacher, meta = load_trained_teacher(adapter, data, cache_dir(cfg))
    # Evaluation settings come from this command's config; prompts from the adapter (what it was trained on).
    teacher_cfg = OmegaConf.merge(OmegaConf.create(saved_teacher), {"eval": OmegaConf.to_container(cfg.teacher.eval),
                                                                    "data": OmegaConf.to_container(cfg.teacher.data)})
    encoder = prompt_encoder(loaded.tokenizer, data, teacher_cfg.prompt)
    run = open_run(cfg, f"{cfg.run.name}-eval")
    eval_cfg = OmegaConf.merge(cfg, {"teacher": teacher_cfg})
    dm = _datamodule(eval_cfg, data, encoder, teacher.student)
    module = TeacherModule(teacher, encoder, encoder.titles, optimizer_settings(cfg), efficiency(cfg), evaluation,
                           int(teacher_cfg.prompt.num_candidates))
    meter = StageMeter(items_fn=batch_token_counts, unit="samples")
    if wants_teacher_protocol(teacher_cfg):  # LLaRA / iLoRA's protocol in place of this toolkit's
        metrics = run_teacher_protocol(cfg, teacher_cfg, teacher, encoder, data, run)
        run.finish("teacher-eval", metrics, meter.records, describe_environment(), extra={"adapter": str(adapter)})
        return RunResult(run.path, metrics, meter.records, {"adapter": str(adapter)})
    trainer = build_trainer(efficiency(cfg), run, callbacks=[meter], limit_val_batches=cfg.train.limit_val_batches,
                            limit_test_batches=cfg.train.limit_test_batches, progress_bar=bool(cfg.run.progress_bar),
                            llm=True)
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
        if "/llara_" in key:
            continue  # printed below with their intervals
        if isinstance(value, float):
            value = f"{value:.0f}" if is_integer_metric(key) else f"{value:.4f}"  # counts as integers
        print(f"  {key} = {value}")
    for line in summary_lines(result.metrics):
        print(line)
    if result.artefacts.get("adapter"):
        print(f"  adapter: {result.artefacts['adapter']}")
    print(f"  run folder: {result.run_dir}")


def train_command(args) -> int:
    cfg = load_config("teacher", args.overrides, args.config, applied=True)
    result = train_teacher(cfg)
    method = str(cfg.teacher.eval.method)
    kinds = [f"over the candidates (cand{int(cfg.teacher.prompt.num_candidates)}_*)"] * (method in ("likelihood", "both"))
    kinds += ["of generation (gen_*)"] * (method in ("generate", "both"))
    print_teacher(result, f"teacher trained; metrics {' and '.join(kinds)}")
    return 0


def evaluate_command(args) -> int:
    cfg = load_config("teacher", args.overrides, args.config)
    result = evaluate_teacher(cfg, args.adapter)
    print_teacher(result, f"teacher adapter {args.adapter}")
    return 0
