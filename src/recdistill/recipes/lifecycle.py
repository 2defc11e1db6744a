"""The run every training workload shares: seed, prepared data, run folder, fit, select on validation,
evaluate once, finish. The steps are small functions so each recipe reads as the list of its steps;
validation of the recipe's own settings happens before any of them (before a run folder exists).
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import lightning as L
from lightning.pytorch.callbacks import EarlyStopping, ModelCheckpoint
from omegaconf import DictConfig, OmegaConf

from recdistill.data.prepared import PreparedData, load_prepared
from recdistill.engine import Efficiency, OptimizerSettings, RunDir, StageMeter, build_trainer, seed_everything
from recdistill.engine.checkpoint_files import read_checkpoint_file
from recdistill.engine.resume import RandomStates, last_checkpoint, last_checkpoint_callback
from recdistill.engine.integrity import write_checksum
from recdistill.errors import RecdistillError
from recdistill.evaluation.summary import summary_lines
from recdistill.report.format import sampled_note


@dataclass
class RunResult:
    """What a recipe hands back: its run folder (None when it wrote none), metrics, stage records, the
    paths of what it produced (``artefacts``: checkpoint, adapter, teacher_outputs ...) and extra facts."""

    run_dir: Path | None
    metrics: dict
    stages: list = field(default_factory=list)
    artefacts: dict[str, str] = field(default_factory=dict)
    info: dict = field(default_factory=dict)


def seed_run(cfg: DictConfig) -> None:
    """Seed the run, the first step of every training and evaluation recipe; the efficiency settings are
    built (and so checked: ``efficiency.precision``) first, before data is loaded or a run folder exists."""
    efficiency(cfg)
    seed_everything(int(cfg.efficiency.seed), bool(cfg.efficiency.deterministic))


def prepared_data(cfg: DictConfig) -> PreparedData:
    """The run's dataset: ``cfg.prepared`` if given (an already prepared folder), else prepared (or found
    up to date) under ``paths.data_dir`` by :func:`recdistill.recipes.prepare.ensure_prepared_from`."""
    given = cfg.get("prepared")
    if given:
        return load_prepared(Path(os.path.expanduser(str(given))))
    from recdistill.recipes.prepare import ensure_prepared_from

    return load_prepared(ensure_prepared_from(cfg))


def is_main_process() -> bool:
    return os.environ.get("LOCAL_RANK", "0") == "0" and os.environ.get("NODE_RANK", "0") == "0"


def resume_from(cfg: DictConfig) -> str | None:
    """``train.resume`` (a run folder to continue), or None for a new run."""
    train = cfg.get("train")
    return str(train.resume) if train is not None and train.get("resume") else None


# Runs opened by the recipe now running, so `records_run_state` can mark them when it fails.
_OPEN_RUNS: list[RunDir] = []


def records_run_state(recipe):
    """Decorates a recipe function: each run folder it opened (:func:`open_run`) and did not finish gets
    ``state.json`` ``failed`` or ``interrupted`` when the recipe raises, before the error goes on."""
    @functools.wraps(recipe)
    def wrapper(*args, **kwargs):
        mark = len(_OPEN_RUNS)
        try:
            return recipe(*args, **kwargs)
        except BaseException as exc:
            if is_main_process():
                for run in _OPEN_RUNS[mark:]:
                    run.mark_ended(exc)
            raise
        finally:
            del _OPEN_RUNS[mark:]
    return wrapper


def interrupted_run(cfg: DictConfig) -> Path | None:
    """The newest run folder under ``paths.runs_dir`` started with exactly ``cfg`` (``train.resume`` aside)
    that did not finish but kept a ``last.ckpt``: what ``train.resume`` continues (the pipeline's resume)."""
    wanted = OmegaConf.to_container(cfg, resolve=True)
    wanted.get("train", {}).pop("resume", None)
    runs = Path(str(cfg.paths.runs_dir)).expanduser()
    candidates = sorted(runs.glob("*/checkpoints/last.ckpt"), key=lambda p: p.stat().st_mtime, reverse=True)
    for ckpt in candidates:
        run = ckpt.parent.parent
        state = run / "state.json"
        if not (run / "config.yaml").is_file() or (run / "metrics.json").is_file() or (
                state.is_file() and '"complete"' in state.read_text()):
            continue
        saved = OmegaConf.to_container(OmegaConf.load(run / "config.yaml"), resolve=True)
        saved.get("train", {}).pop("resume", None)
        if saved == wanted:
            return run
    return None


def refuse_resume(cfg: DictConfig, command: str) -> None:
    """Evaluations write a new run each time: ``train.resume`` means nothing there."""
    if resume_from(cfg):
        raise RecdistillError(f"train.resume is for training commands; `recdistill {command}` writes a new run")


def open_run(cfg: DictConfig, name: str | None = None) -> RunDir:
    """The run folder ``<paths.runs_dir>/<date>-<time>_<name>`` with the resolved config written in it (on
    the main process only: DDP children share the parent's folder); with ``train.resume``, that run's
    folder, continued."""
    resumed = resume_from(cfg)
    if resumed:
        last_checkpoint(resumed)  # before anything is written: a run without a readable last.ckpt is refused
        run = RunDir(resumed)
        run.keep_logs_before_resume()
    else:
        run = RunDir.create(cfg.paths.runs_dir, str(name if name is not None else cfg.run.name))
    if is_main_process():
        run.write_config(OmegaConf.to_yaml(cfg, resolve=True))
        run.write_state("running")
    _OPEN_RUNS.append(run)
    return run


def efficiency(cfg: DictConfig) -> Efficiency:
    """The ``efficiency`` group as the engine's settings."""
    return Efficiency.from_dict(OmegaConf.to_container(cfg.efficiency, resolve=True))


def optimizer_settings(cfg: DictConfig) -> OptimizerSettings:
    return OptimizerSettings.from_dict(OmegaConf.to_container(cfg.train, resolve=True))


def collect(results: list[dict]) -> dict:
    """Lightning's list of metric dicts -> one sorted dict of floats."""
    out: dict = {}
    for r in results:
        out.update(r)
    return {k: float(v) for k, v in sorted(out.items())}


def batch_counts(batch: dict) -> dict:
    """Throughput units of a recommender batch: training windows ("sequences") and next-item targets
    ("interactions"); for evaluation batches, users."""
    if batch["targets"].dim() == 2:
        return {"sequences": int(batch["inputs"].shape[0]), "interactions": int((batch["targets"] > 0).sum())}
    return {"sequences": int(batch["inputs"].shape[0])}


def fit_checkpointed(trainer: L.Trainer, module: L.LightningModule, run: RunDir, cfg: DictConfig, **fit_kwargs) -> None:
    """``trainer.fit``, from the run's ``last.ckpt`` when ``train.resume`` is set. The trainer needs
    ``last_checkpoint_callback(run.checkpoints)`` and :class:`RandomStates` among its callbacks."""
    ckpt = str(last_checkpoint(run.path)) if resume_from(cfg) else None
    trainer.fit(module, ckpt_path=ckpt, **fit_kwargs)


def fit_select_evaluate(cfg: DictConfig, run: RunDir, module: L.LightningModule, dm, checkpoint_template: str,
                        extra_callbacks: list | None = None) -> tuple[dict, str, StageMeter, L.Trainer]:
    """Train with the stage meter, keep the best checkpoint on ``train.monitor`` (early stopping with
    ``train.early_stopping_patience``), then evaluate that checkpoint once on val and on test.
    ``train.batch_size=auto`` runs the engine's batch-size search first (recorded in the run).
    Returns ``(metrics, best_checkpoint, meter, trainer)``."""
    meter = StageMeter(items_fn=batch_counts, unit="sequences", warmup_steps=int(cfg.efficiency.measure_warmup_steps))
    checkpoints = ModelCheckpoint(dirpath=str(run.checkpoints), filename=checkpoint_template,
                                  monitor=str(cfg.train.monitor), mode="max", save_top_k=1,
                                  auto_insert_metric_name=False)
    callbacks = [meter, checkpoints, last_checkpoint_callback(run.checkpoints), RandomStates(),
                 *(extra_callbacks or [])]
    if int(cfg.train.early_stopping_patience) > 0:
        callbacks.append(EarlyStopping(monitor=str(cfg.train.monitor), mode="max",
                                       patience=int(cfg.train.early_stopping_patience)))
    trainer = build_trainer(efficiency(cfg), run, callbacks=callbacks, max_epochs=int(cfg.train.max_epochs),
                            max_steps=int(cfg.train.max_steps), limit_train_batches=cfg.train.limit_train_batches,
                            check_val_every_n_epoch=int(cfg.train.check_val_every_n_epoch),
                            progress_bar=bool(cfg.run.progress_bar))
    if cfg.train.batch_size == "auto":
        dm.batch_size = _searched_batch_size(cfg, run, trainer, module, dm)
    fit_checkpointed(trainer, module, run, cfg, datamodule=dm)
    best = checkpoints.best_model_path
    if not best:
        raise RecdistillError("training produced no checkpoint (did validation run? check "
                              "train.check_val_every_n_epoch against train.max_epochs)")
    if trainer.is_global_zero:
        write_checksum(best)  # every later load checks the file against it (engine/integrity.py)
    # Both splits are evaluated once, on the selected checkpoint, so val and test describe the same model.
    metrics = collect([*trainer.validate(module, datamodule=dm, ckpt_path=best, verbose=False),
                       *trainer.test(module, datamodule=dm, ckpt_path=best, verbose=False)])
    metrics["best_epoch"] = int(read_checkpoint_file(best)["epoch"])
    metrics["epochs_trained"] = int(trainer.current_epoch)
    return metrics, best, meter, trainer


def _searched_batch_size(cfg: DictConfig, run: RunDir, trainer, module, dm) -> int:
    """``train.batch_size=auto``: the engine's search, or for a resumed run the size its search found."""
    from recdistill.engine.batch_size import find_training_batch_size, recorded_batch_size

    found = recorded_batch_size(run) if resume_from(cfg) else None
    if found is not None:
        return found
    return find_training_batch_size(trainer, module, module.model, dm.train_dataloader(),
                                    efficiency(cfg).batch_size_search, run).batch_size


def print_ranking_result(result: RunResult, title: str) -> None:
    """The recommender metrics of a run, on the main process."""
    if not is_main_process():
        return
    metrics = result.metrics
    print(f"\n{title}")
    for split in ("val", "test"):
        line = "  ".join(f"{name}@{k}={metrics[f'{split}/{name}@{k}']:.4f}"
                         for name in ("hr", "ndcg", "mrr") for k in (10, 20) if f"{split}/{name}@{k}" in metrics)
        print(f"  {split:4s} {line}")
        sampled = [k for k in metrics if re.fullmatch(rf"{split}/sampled\d+_ndcg@10", k)]
        for key in sampled:
            print(f"  {split:4s} {key.split('/', 1)[1]}={metrics[key]:.4f} {sampled_note(metrics, key)}")
    for line in summary_lines(metrics):  # eval.protocol=llara
        print(line)
    if "best_checkpoint" in result.artefacts:
        print(f"  best checkpoint: {result.artefacts['best_checkpoint']}")
    if result.run_dir:
        print(f"  run folder: {result.run_dir}")
