"""``recdistill train teacher`` and ``recdistill eval teacher``.

In-process entry points: :func:`train_teacher` (a composed config -> run folder, metrics, adapter) and
:func:`evaluate_adapter`.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from recdistill.config import compose
from recdistill.engine import (RunDir, StageMeter, build_trainer, dataloader_kwargs, describe_environment,
                               resolve_accelerator, seed_everything)
from recdistill.errors import ConfigError, RecdistillError
from recdistill.export.from_config import load_matching_student
from recdistill.report.format import is_integer_metric
from recdistill.teacher.build import (build_encoder, build_teacher, cache_dir, effective_llm_config, prepared_data,
                                      prompt_settings, teacher_spec, validate_teacher_config)
from recdistill.teacher.checkpoint import load_adapter_weights, read_adapter_meta, save_adapter
from recdistill.teacher.data import TeacherDataModule, batch_token_counts
from recdistill.teacher.module import TeacherModule


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


def _datamodule(cfg: DictConfig, data, encoder, student) -> TeacherDataModule:
    accelerator = resolve_accelerator(cfg.efficiency.accelerator)
    t = cfg.teacher
    return TeacherDataModule(data, encoder, prompt_settings(t.prompt, student), int(cfg.train.batch_size),
                             int(cfg.train.eval_batch_size), dataloader_kwargs(cfg.efficiency, accelerator),
                             str(t.data.train_positions), int(t.data.last_n),
                             None if t.data.limit_users is None else int(t.data.limit_users))


def _eval_metrics(results: list[dict]) -> dict:
    out = {}
    for r in results:
        out.update({k: float(v) for k, v in r.items()})
    return out


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


def train_teacher(cfg: DictConfig) -> dict:
    validate_teacher_config(cfg)
    checkpoint_monitor(cfg)  # a bad monitor name fails here, before anything is loaded
    if not cfg.teacher.student_checkpoint:
        raise ConfigError("teacher.student_checkpoint is required: train a student first (`recdistill train student`) "
                          "and pass teacher.student_checkpoint=<run>/checkpoints/<file>.ckpt")
    seed_everything(int(cfg.efficiency.seed), bool(cfg.efficiency.deterministic))
    data = prepared_data(cfg)
    student, student_meta = load_matching_student(cfg.teacher.student_checkpoint, data)
    llm_cfg = effective_llm_config(cfg.llm, cfg.efficiency)
    spec = teacher_spec(cfg.teacher)
    teacher, loaded = build_teacher(llm_cfg, spec, student, cache_dir(cfg),
                                    uniform_dropout=bool(cfg.efficiency.get("uniform_dropout", True)))
    encoder = build_encoder(loaded.tokenizer, data, cfg.teacher.prompt)
    dm = _datamodule(cfg, data, encoder, student)
    run = RunDir.create(cfg.paths.runs_dir, str(cfg.run.name))
    run.write_config(cfg)
    report = dm.prompt_report()
    run.write_json("prompt_report.json", report)
    print(f"prompts: {json.dumps(report)}")

    module = TeacherModule(teacher, encoder, data.titles, cfg.train, cfg.efficiency, cfg.teacher.eval,
                           int(cfg.teacher.prompt.num_candidates))
    meter = StageMeter(items_fn=batch_token_counts, unit="samples", warmup_steps=int(cfg.efficiency.measure_warmup_steps))
    validate = cfg.train.limit_val_batches != 0
    callbacks = [meter]
    ckpt_cb = None
    if bool(cfg.train.save_checkpoints):
        ckpt_cb = ModelCheckpoint(dirpath=str(run.checkpoints), filename="teacher-{epoch:02d}",
                                  monitor=checkpoint_monitor(cfg) if validate else None, mode="max", save_top_k=1,
                                  save_last=True)
        callbacks.append(ckpt_cb)
    trainer = build_trainer(cfg.efficiency, run, callbacks=callbacks, max_epochs=int(cfg.train.max_epochs),
                            max_steps=int(cfg.train.max_steps), limit_train_batches=cfg.train.limit_train_batches,
                            limit_val_batches=cfg.train.limit_val_batches, limit_test_batches=cfg.train.limit_test_batches,
                            check_val_every_n_epoch=int(cfg.train.check_val_every_n_epoch),
                            progress_bar=bool(cfg.run.progress_bar), reload_dataloaders_every_n_epochs=1)
    trainer.fit(module, datamodule=dm)
    best = ckpt_cb.best_model_path if ckpt_cb is not None else ""
    if best:
        state = torch.load(best, map_location="cpu", weights_only=True)["state_dict"]
        module.load_state_dict(state, strict=False)
    metrics: dict = {}
    if validate:
        metrics.update(_eval_metrics(trainer.validate(module, datamodule=dm, verbose=False)))
    if cfg.train.limit_test_batches != 0:
        metrics.update(_eval_metrics(trainer.test(module, datamodule=dm, verbose=False)))
    adapter_dir = save_adapter(teacher, run.path / "adapter", {
        "llm": OmegaConf.to_container(llm_cfg, resolve=True),
        "teacher": OmegaConf.to_container(cfg.teacher, resolve=True),
        "student_checkpoint": str(Path(str(cfg.teacher.student_checkpoint)).expanduser().resolve()),
        "dataset": {"name": data.name, "fingerprint": data.fingerprint, "num_items": data.num_items},
        "best_checkpoint": best or None,
    })
    metrics.update(_steps_summary(meter.records))
    run.finish("teacher", cfg, metrics, meter.records, describe_environment(),
               extra={"adapter": str(adapter_dir), "prompt_report": report, "student": student_meta.get("path")})
    return {"run_dir": str(run.path), "metrics": metrics, "adapter": str(adapter_dir), "stages": meter.records,
            "prompt_report": report}


def load_trained_teacher(adapter: str | Path, data, cache: str, llm_overrides: dict | None = None):
    """Rebuild a trained teacher from an adapter folder: fresh base, same wrapping, saved tensors."""
    meta = read_adapter_meta(adapter)
    fp = meta.get("dataset", {}).get("fingerprint")
    if fp and data.fingerprint and fp != data.fingerprint:
        raise RecdistillError(f"adapter {adapter} was trained on dataset fingerprint {fp}, the prepared data at "
                              f"{data.path} has {data.fingerprint}; use the dataset it was trained on")
    student, _ = load_matching_student(meta["student_checkpoint"], data)
    llm_cfg = OmegaConf.create({**meta["llm"], **(llm_overrides or {})})
    teacher_cfg = OmegaConf.create(meta["teacher"])
    from recdistill.teacher.model import TeacherSpec

    spec = TeacherSpec.from_dict(meta["spec"])
    teacher, loaded = build_teacher(llm_cfg, spec, student, cache)
    load_adapter_weights(teacher, adapter)
    teacher.eval()
    return teacher, loaded, teacher_cfg, meta


def evaluate_adapter(cfg: DictConfig, adapter: str | Path) -> dict:
    seed_everything(int(cfg.efficiency.seed), bool(cfg.efficiency.deterministic))
    data = prepared_data(cfg)
    teacher, loaded, saved_teacher_cfg, meta = load_trained_teacher(adapter, data, cache_dir(cfg))
    # Evaluation settings come from this command's config; prompts from the adapter (what it was trained on).
    teacher_cfg = OmegaConf.merge(saved_teacher_cfg, {"eval": OmegaConf.to_container(cfg.teacher.eval),
                                                      "data": OmegaConf.to_container(cfg.teacher.data)})
    encoder = build_encoder(loaded.tokenizer, data, teacher_cfg.prompt)
    run = RunDir.create(cfg.paths.runs_dir, f"{cfg.run.name}-eval")
    run.write_config(cfg)
    eval_cfg = OmegaConf.merge(cfg, {"teacher": teacher_cfg})
    dm = _datamodule(eval_cfg, data, encoder, teacher.student)
    module = TeacherModule(teacher, encoder, data.titles, cfg.train, cfg.efficiency, teacher_cfg.eval,
                           int(teacher_cfg.prompt.num_candidates))
    meter = StageMeter(items_fn=batch_token_counts, unit="samples")
    trainer = build_trainer(cfg.efficiency, run, callbacks=[meter], limit_val_batches=cfg.train.limit_val_batches,
                            limit_test_batches=cfg.train.limit_test_batches, progress_bar=bool(cfg.run.progress_bar))
    metrics = _eval_metrics(trainer.validate(module, datamodule=dm, verbose=False))
    metrics.update(_eval_metrics(trainer.test(module, datamodule=dm, verbose=False)))
    run.finish("teacher-eval", cfg, metrics, meter.records, describe_environment(), extra={"adapter": str(adapter)})
    return {"run_dir": str(run.path), "metrics": metrics, "adapter": str(adapter), "stages": meter.records}


def _print(result: dict, title: str) -> None:
    print(f"\n{title}")
    for key, value in sorted(result["metrics"].items()):
        if isinstance(value, float):
            value = f"{value:.0f}" if is_integer_metric(key) else f"{value:.4f}"  # counts as integers
        print(f"  {key} = {value}")
    if result.get("adapter"):
        print(f"  adapter: {result['adapter']}")
    print(f"  run folder: {result['run_dir']}")


def train(args) -> int:
    cfg = compose("teacher", args.overrides, args.config)
    result = train_teacher(cfg)
    method = str(cfg.teacher.eval.method)
    kinds = [f"over the candidates (cand{int(cfg.teacher.prompt.num_candidates)}_*)"] * (method in ("likelihood", "both"))
    kinds += ["of generation (gen_*)"] * (method in ("generate", "both"))
    _print(result, f"teacher trained; metrics {' and '.join(kinds)}")
    return 0


def evaluate(args) -> int:
    cfg = compose("teacher", args.overrides, args.config)
    result = evaluate_adapter(cfg, args.adapter)
    _print(result, f"teacher adapter {args.adapter}")
    return 0
