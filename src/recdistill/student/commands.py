"""``recdistill train student`` and ``recdistill eval student``.

In-process entry points for the pipeline and the benchmarks: :func:`train_student` (a composed config
-> run folder, metrics, best checkpoint) and :func:`evaluate_checkpoint`.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import lightning as L
import torch
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from recdistill.config import check_choice, check_positive, check_range, compose
from recdistill.data.datamodule import SequenceDataModule
from recdistill.data.prepared import PreparedData, load_prepared
from recdistill.engine import (
    RunDir,
    StageMeter,
    build_trainer,
    dataloader_kwargs,
    describe_environment,
    resolve_accelerator,
    seed_everything,
)
from recdistill.errors import ConfigError, RecdistillError
from recdistill.report.format import sampled_note
from recdistill.student.checkpoint import read_checkpoint
from recdistill.student.module import LOSSES, StudentModule

CHECKPOINT_TEMPLATE = "student-epoch={epoch:02d}-val_ndcg@10={val/ndcg@10:.4f}"


def validate_config(cfg: DictConfig) -> None:
    """Every student value checked up front, with the valid choices in the message."""
    s, t, e = "student", "train", "eval"
    for key in ("max_len", "hidden_size", "num_blocks", "num_heads"):
        check_positive(cfg, f"{s}.{key}")
    check_range(cfg, f"{s}.dropout", 0.0, 0.99)
    check_choice(cfg, f"{s}.loss", LOSSES)
    if cfg.student.hidden_size % cfg.student.num_heads:
        raise ConfigError(f"student.hidden_size={cfg.student.hidden_size} must be divisible by "
                          f"student.num_heads={cfg.student.num_heads}")
    if cfg.student.loss == "bce":
        check_positive(cfg, f"{s}.num_negatives")
    check_positive(cfg, f"{t}.batch_size", allow=("auto",))
    check_positive(cfg, f"{t}.eval_batch_size")
    check_positive(cfg, f"{t}.max_epochs")
    check_positive(cfg, f"{t}.lr")
    check_positive(cfg, f"{t}.weight_decay", allow_zero=True)
    check_positive(cfg, f"{t}.early_stopping_patience", allow_zero=True)
    check_positive(cfg, f"{t}.check_val_every_n_epoch")
    ks = list(cfg.eval.ks)
    if not ks or any(not isinstance(k, int) or isinstance(k, bool) or k < 1 for k in ks):
        raise ConfigError(f"eval.ks={ks} is not valid; expected a list of integers >= 1, e.g. [1,5,10,20]")
    if 10 not in ks:
        raise ConfigError(f"eval.ks={ks} must contain 10: models are selected on val/ndcg@10")
    check_positive(cfg, f"{e}.sampled_negatives", allow_zero=True)
    check_choice(cfg, f"{e}.exclude_seen", (True, False))


def prepared_data(cfg: DictConfig) -> PreparedData:
    """The run's dataset: ``cfg.prepared`` if given (an already prepared folder), else prepared (or found
    up to date) by ``recdistill.data.prepare.ensure_prepared``."""
    given = cfg.get("prepared")
    if given:
        return load_prepared(Path(os.path.expanduser(str(given))))
    from recdistill.data.prepare import ensure_prepared

    return load_prepared(ensure_prepared(cfg))


def build_datamodule(cfg: DictConfig, data: PreparedData, accelerator: str) -> SequenceDataModule:
    loss_negatives = int(cfg.student.num_negatives) if cfg.student.loss == "bce" else 0
    batch_size = cfg.train.batch_size
    return SequenceDataModule(
        data,
        max_len=int(cfg.student.max_len),
        batch_size=128 if batch_size == "auto" else int(batch_size),  # "auto": the finder starts here
        eval_batch_size=int(cfg.train.eval_batch_size),
        loader_kwargs=dataloader_kwargs(cfg.efficiency, accelerator),
        num_negatives=loss_negatives,
        negatives_from_history=bool(cfg.student.negatives_from_history),
        sampled_negatives=int(cfg.eval.sampled_negatives),
        sampled_seed=int(cfg.eval.sampled_seed),
    )


def _batch_counts(batch: dict) -> dict:
    """Throughput units: training windows ("sequences") and next-item targets ("interactions");
    for evaluation batches, users."""
    if batch["targets"].dim() == 2:
        return {"sequences": int(batch["inputs"].shape[0]), "interactions": int((batch["targets"] > 0).sum())}
    return {"sequences": int(batch["inputs"].shape[0])}


def _dataset_meta(data: PreparedData) -> dict:
    return {"name": data.name, "fingerprint": data.fingerprint, "num_users": data.num_users,
            "num_items": data.num_items, "path": str(data.path)}


def _is_main_process() -> bool:
    return os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0"


def fit_select_evaluate(cfg: DictConfig, run: RunDir, module: L.LightningModule, dm, checkpoint_template: str,
                        extra_callbacks: list | None = None) -> tuple[dict, str, StageMeter, L.Trainer]:
    """The run ``train student`` and ``train distill`` share: train with the stage meter, keep the best
    checkpoint on ``train.monitor`` (early stopping with ``train.early_stopping_patience``), then evaluate
    that checkpoint once on val and on test. ``train.batch_size=auto`` runs the engine's batch-size search
    first (recorded in the run). Returns ``(metrics, best_checkpoint, meter, trainer)``."""
    meter = StageMeter(items_fn=_batch_counts, unit="sequences", warmup_steps=int(cfg.efficiency.measure_warmup_steps))
    checkpoints = ModelCheckpoint(dirpath=str(run.checkpoints), filename=checkpoint_template,
                                  monitor=str(cfg.train.monitor), mode="max", save_top_k=1,
                                  auto_insert_metric_name=False)
    callbacks = [meter, checkpoints, *(extra_callbacks or [])]
    if int(cfg.train.early_stopping_patience) > 0:
        callbacks.append(EarlyStopping(monitor=str(cfg.train.monitor), mode="max",
                                       patience=int(cfg.train.early_stopping_patience)))
    trainer = build_trainer(cfg.efficiency, run, callbacks=callbacks, max_epochs=int(cfg.train.max_epochs),
                            max_steps=int(cfg.train.max_steps), limit_train_batches=cfg.train.limit_train_batches,
                            check_val_every_n_epoch=int(cfg.train.check_val_every_n_epoch),
                            progress_bar=bool(cfg.run.progress_bar))
    if cfg.train.batch_size == "auto":
        from recdistill.engine.batch_size import find_training_batch_size

        dm.batch_size = find_training_batch_size(trainer, module, module.model, dm.train_dataloader(),
                                                 cfg.efficiency.get("batch_size_search"), run).batch_size
    trainer.fit(module, datamodule=dm)
    best = checkpoints.best_model_path
    if not best:
        raise RecdistillError("training produced no checkpoint (did validation run? check "
                              "train.check_val_every_n_epoch against train.max_epochs)")
    # Both splits are evaluated once, on the selected checkpoint, so val and test describe the same model.
    metrics: dict = {}
    metrics.update(trainer.validate(module, datamodule=dm, ckpt_path=best, verbose=False)[0])
    metrics.update(trainer.test(module, datamodule=dm, ckpt_path=best, verbose=False)[0])
    metrics = {k: float(v) for k, v in sorted(metrics.items())}
    metrics["best_epoch"] = int(torch.load(best, map_location="cpu", weights_only=True)["epoch"])
    metrics["epochs_trained"] = int(trainer.current_epoch)
    return metrics, best, meter, trainer


def train_student(cfg: DictConfig, extra_callbacks: list | None = None) -> dict:
    """Train, select on val NDCG@10, evaluate the best checkpoint on val and test.

    ``extra_callbacks`` are added to the Trainer's (benchmarks and tests observe the run through them).

    Returns ``{"run_dir", "metrics", "best_checkpoint", "stages"}`` (on DDP child processes, where
    nothing is written, the same keys with the child's view).
    """
    validate_config(cfg)
    seed_everything(int(cfg.efficiency.seed), bool(cfg.efficiency.deterministic))
    data = prepared_data(cfg)
    run = RunDir.create(cfg.paths.runs_dir, str(cfg.run.name))
    if _is_main_process():
        run.write_config(cfg)
    accelerator = resolve_accelerator(cfg.efficiency.accelerator)
    dm = build_datamodule(cfg, data, accelerator)
    module = StudentModule(data.num_items, OmegaConf.to_container(cfg, resolve=True), _dataset_meta(data))
    module.compile_model(cfg.efficiency.compile)

    metrics, best, meter, trainer = fit_select_evaluate(cfg, run, module, dm, CHECKPOINT_TEMPLATE, extra_callbacks)
    result = {"run_dir": str(run.path), "metrics": metrics, "best_checkpoint": best, "stages": meter.records}
    if trainer.is_global_zero:
        run.finish("student", cfg, metrics, meter.records, describe_environment(),
                   extra={"best_checkpoint": best, "dataset": _dataset_meta(data)})
    return result


def evaluate_checkpoint(checkpoint: str | Path, overrides=(), extra_files=(), write_run: bool = True) -> dict:
    """Evaluate a student checkpoint on val and test with the config it was trained with (``overrides``
    may change evaluation and efficiency settings, e.g. ``eval.exclude_seen=false``)."""
    ckpt = read_checkpoint(checkpoint)
    cfg = _config_for_checkpoint(ckpt["hyper_parameters"]["cfg"], overrides, extra_files)
    validate_config(cfg)
    seed_everything(int(cfg.efficiency.seed), bool(cfg.efficiency.deterministic))
    data = prepared_data(cfg)
    expected = ckpt["hyper_parameters"].get("dataset_meta", {}).get("fingerprint")
    if expected and data.fingerprint and expected != data.fingerprint:
        raise RecdistillError(f"{checkpoint} was trained on dataset fingerprint {expected}, but the prepared "
                              f"data at {data.path} has {data.fingerprint}; prepare the same dataset settings")
    if int(ckpt["hyper_parameters"]["num_items"]) != data.num_items:
        raise RecdistillError(f"{checkpoint} has {ckpt['hyper_parameters']['num_items']} items, the data {data.num_items}")
    run = RunDir.create(cfg.paths.runs_dir, f"{cfg.run.name}-eval") if write_run else None
    if run is not None and _is_main_process():
        run.write_config(cfg)
    accelerator = resolve_accelerator(cfg.efficiency.accelerator)
    dm = build_datamodule(cfg, data, accelerator)
    module = StudentModule(data.num_items, OmegaConf.to_container(cfg, resolve=True), _dataset_meta(data))
    module.model.load_state_dict({k[6:]: v for k, v in ckpt["state_dict"].items() if k.startswith("model.")})
    meter = StageMeter(items_fn=_batch_counts, unit="sequences")
    trainer = build_trainer(cfg.efficiency, run, callbacks=[meter], progress_bar=bool(cfg.run.progress_bar),
                            loggers=run is not None)
    metrics: dict = {}
    metrics.update(trainer.validate(module, datamodule=dm, verbose=False)[0])
    metrics.update(trainer.test(module, datamodule=dm, verbose=False)[0])
    metrics = {k: float(v) for k, v in sorted(metrics.items())}
    result = {"run_dir": str(run.path) if run else None, "metrics": metrics, "checkpoint": str(checkpoint),
              "stages": meter.records}
    if run is not None and trainer.is_global_zero:
        run.finish("student-eval", cfg, metrics, meter.records, describe_environment(),
                   extra={"checkpoint": str(checkpoint), "dataset": _dataset_meta(data)})
    return result


SAVED_SECTIONS = ("student", "dataset", "train", "eval")


def _config_for_checkpoint(saved: dict, overrides=(), extra_files=()) -> DictConfig:
    """The checkpoint's model, data, training and evaluation settings, with this machine's paths and
    efficiency defaults; the command line's files and overrides win over both."""
    import tempfile

    choices = saved.get("choices", {})
    user_groups = {str(o).split("=", 1)[0] for o in overrides}
    sections = [g for g in SAVED_SECTIONS if g not in user_groups]  # `dataset=csv` here replaces the saved one
    group_choices = [f"{g}={choices[g]}" for g in sections if g in choices]
    values = {g: saved[g] for g in sections if g in saved}
    if saved.get("prepared"):
        values["prepared"] = saved["prepared"]
    with tempfile.TemporaryDirectory() as tmp:
        saved_file = Path(tmp) / "checkpoint-config.yaml"
        saved_file.write_text(OmegaConf.to_yaml(OmegaConf.create(values)))
        return compose("student", [*group_choices, *overrides], [saved_file, *extra_files])


def _print_result(result: dict, title: str) -> None:
    if not _is_main_process():
        return
    metrics = result["metrics"]
    print(f"\n{title}")
    for split in ("val", "test"):
        line = "  ".join(f"{name}@{k}={metrics[f'{split}/{name}@{k}']:.4f}"
                         for name in ("hr", "ndcg", "mrr") for k in (10, 20) if f"{split}/{name}@{k}" in metrics)
        print(f"  {split:4s} {line}")
        sampled = [k for k in metrics if re.fullmatch(rf"{split}/sampled\d+_ndcg@10", k)]
        for key in sampled:
            print(f"  {split:4s} {key.split('/', 1)[1]}={metrics[key]:.4f} {sampled_note(metrics, key)}")
    if "best_checkpoint" in result:
        print(f"  best checkpoint: {result['best_checkpoint']}")
    if result.get("run_dir"):
        print(f"  run folder: {result['run_dir']}")


def train(args) -> int:
    cfg = compose("student", args.overrides, args.config)
    result = train_student(cfg)
    _print_result(result, "student trained; metrics of the best checkpoint (full catalogue"
                  + (", seen items excluded)" if cfg.eval.exclude_seen else ")"))
    return 0


def evaluate(args) -> int:
    result = evaluate_checkpoint(args.checkpoint, args.overrides, args.config)
    _print_result(result, f"student checkpoint {args.checkpoint}")
    return 0

