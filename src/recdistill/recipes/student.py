"""``recdistill train student``, ``recdistill eval student`` and ``eval distill``: the SASRec student's recipe.

:func:`train_student` (a composed config -> :class:`RunResult` with the best checkpoint) and
:func:`evaluate_student` (a student or distilled-student checkpoint, evaluated with the config it was
trained with). The data module
built here serves distillation too (:mod:`recdistill.recipes.distill`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from recdistill.config import check_choice, check_positive, compose
from recdistill.data.datamodule import SequenceDataModule
from recdistill.data.prepared import PreparedData
from recdistill.engine import StageMeter, build_trainer, dataloader_kwargs, describe_environment, resolve_accelerator
from recdistill.errors import ConfigError
from recdistill.recipes.config import load_config
from recdistill.recipes.knobs import EVALUATION, check_knobs_take_effect
from recdistill.recipes.lifecycle import (RunResult, batch_counts, collect, efficiency, fit_select_evaluate, open_run,
                                          optimizer_settings, prepared_data, print_ranking_result, records_run_state,
                                          refuse_resume, seed_run)
from recdistill.recipes.protocols import student_protocol
from recdistill.recipes.seeds import train_over_seeds
from recdistill.recipes.student_settings import ranking_eval_settings, student_settings
from recdistill.student.checkpoint import load_recommender
from recdistill.student.module import LOSSES, StudentModule

CHECKPOINT_TEMPLATE = "student-epoch={epoch:02d}-val_ndcg@10={val/ndcg@10:.4f}"
# train.batch_size=auto: the data module starts at this size; the engine's search replaces it before training.
AUTO_BATCH_START = 128


def validate_student_config(cfg: DictConfig) -> None:
    """Every student value checked up front, with the valid choices in the message."""
    s, t, e = "student", "train", "eval"
    check_positive(cfg, f"{s}.max_len")
    student_settings(cfg)  # the chosen model's own values are checked by its settings class (student/registry.py)
    check_choice(cfg, f"{s}.loss", LOSSES)
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


def student_module(cfg: DictConfig, num_items: int, dataset_meta: dict | None = None) -> StudentModule:
    """The student's LightningModule from the run's settings; the resolved config is saved whole in its
    checkpoint (``eval student`` rebuilds the run from it)."""
    return StudentModule(num_items, student_settings(cfg), ranking_eval_settings(cfg), optimizer_settings(cfg),
                         efficiency(cfg), dataset_meta, run_config=OmegaConf.to_container(cfg, resolve=True))


def build_datamodule(cfg: DictConfig, data: PreparedData, accelerator: str, datamodule_class=SequenceDataModule,
                     num_negatives: int | None = None, **extra) -> SequenceDataModule:
    """The recommender data module of ``train`` / ``student`` / ``eval`` / ``efficiency``, for the student
    and (``datamodule_class``, ``num_negatives`` and the teacher outputs in ``extra``) for distillation."""
    if num_negatives is None:
        num_negatives = int(cfg.student.num_negatives) if cfg.student.loss == "bce" else 0
    batch_size = cfg.train.batch_size
    return datamodule_class(
        data,
        **extra,
        max_len=int(cfg.student.max_len),
        batch_size=AUTO_BATCH_START if batch_size == "auto" else int(batch_size),
        eval_batch_size=int(cfg.train.eval_batch_size),
        loader_kwargs=dataloader_kwargs(efficiency(cfg), accelerator),
        num_negatives=num_negatives,
        negatives_from_history=bool(cfg.student.negatives_from_history),
        sampled_negatives=int(cfg.eval.sampled_negatives),
        sampled_seed=int(cfg.eval.sampled_seed),
    )


@records_run_state
def train_student(cfg: DictConfig, extra_callbacks: list | None = None) -> RunResult:
    """Train, select on val NDCG@10, evaluate the best checkpoint on val and test.

    ``extra_callbacks`` are added to the Trainer's (benchmarks and tests observe the run through them).
    On DDP child processes, where nothing is written, the result is the child's view.
    """
    validate_student_config(cfg)
    seed_run(cfg)
    data = prepared_data(cfg)
    run = open_run(cfg)
    dm = build_datamodule(cfg, data, resolve_accelerator(cfg.efficiency.accelerator))
    module = student_module(cfg, data.num_items, data.meta())
    module.compile_model(cfg.efficiency.compile)

    metrics, best, meter, trainer = fit_select_evaluate(cfg, run, module, dm, CHECKPOINT_TEMPLATE, extra_callbacks)
    if trainer.is_global_zero:
        run.finish("student", metrics, meter.records, describe_environment(),
                   extra={"best_checkpoint": best, "dataset": data.meta()})
    return RunResult(run.path, metrics, meter.records, {"best_checkpoint": best})


SAVED_SECTIONS = ("student", "dataset", "train", "eval")


def config_for_checkpoint(saved: dict, overrides=(), extra_files=()) -> DictConfig:
    """The checkpoint's model, data, training and evaluation settings, with this machine's paths and
    efficiency defaults; the command line's files and overrides win over both."""
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


@records_run_state
def evaluate_student(checkpoint: str | Path, overrides=(), extra_files=(), write_run: bool = True,
                     kind: str | None = "student") -> RunResult:
    """Evaluate a student (``kind="student"``) or distilled-student (``kind="distill"``; ``None``: either)
    checkpoint on val and test with the config it was trained with (``overrides`` may change evaluation
    and efficiency settings, e.g. ``eval.exclude_seen=false``). Every check runs before the run folder
    is made, so a refused checkpoint leaves nothing behind."""
    rec = load_recommender(checkpoint, expect_kind=kind)
    if not any(str(o).startswith("run.name=") for o in overrides):
        overrides = [f"run.name={rec.kind}", *overrides]  # the run folder says what was evaluated: <kind>-eval
    cfg = config_for_checkpoint(rec.cfg, overrides, extra_files)
    check_knobs_take_effect(cfg, "student", f"eval {rec.kind}", EVALUATION)
    refuse_resume(cfg, f"eval {rec.kind}")
    validate_student_config(cfg)
    on_demand = student_protocol(cfg)  # eval.protocol: a registered protocol run after the full ranking
    seed_run(cfg)
    data = prepared_data(cfg)
    rec.check_dataset(data)
    run = open_run(cfg, f"{cfg.run.name}-eval") if write_run else None
    dm = build_datamodule(cfg, data, resolve_accelerator(cfg.efficiency.accelerator))
    module = student_module(cfg, data.num_items, data.meta())
    module.model = rec.model  # the student's or the distilled student's SASRec; evaluation is the same code
    meter = StageMeter(items_fn=batch_counts, unit="sequences")
    trainer = build_trainer(efficiency(cfg), run, callbacks=[meter], progress_bar=bool(cfg.run.progress_bar),
                            loggers=run is not None)
    metrics = collect([*trainer.validate(module, datamodule=dm, verbose=False),
                       *trainer.test(module, datamodule=dm, verbose=False)])
    if on_demand is not None:  # e.g. eval.protocol=llara: the same candidate sets as `eval teacher`
        protocol, settings = on_demand
        protocol_metrics, report = protocol.run(data, module.model, settings)
        metrics.update(protocol_metrics)
        if run is not None and trainer.is_global_zero:
            run.write_json(f"{protocol.name}_protocol.json", report)
    if run is not None and trainer.is_global_zero:
        run.finish(f"{rec.kind}-eval", metrics, meter.records, describe_environment(),
                   extra={"checkpoint": str(checkpoint), "dataset": data.meta()})
    return RunResult(run.path if run else None, metrics, meter.records, {"checkpoint": str(checkpoint)})


def print_student(result: RunResult, cfg: DictConfig) -> None:
    print_ranking_result(result, "student trained; metrics of the best checkpoint (full catalogue"
                         + (", seen items excluded)" if cfg.eval.exclude_seen else ")"))


def train_command(args) -> int:
    if getattr(args, "seeds", None) is not None:
        train_over_seeds("student", args, train_student, print_student)
        return 0
    cfg = load_config("student", args.overrides, args.config, applied=True)
    print_student(train_student(cfg), cfg)
    return 0
    print_student(train_student(load_config("student", args.overrides, args.config, applied=True)))
    return 0


def evaluate_command(args) -> int:
    kind = getattr(args, "kind", "student")  # `eval student` or `eval distill`
    result = evaluate_student(args.checkpoint, args.overrides, args.config, kind=kind)
    print_ranking_result(result, f"{'distilled student' if kind == 'distill' else 'student'} checkpoint {args.checkpoint}")
    return 0
