"""``recdistill train distill``: a SASRec student trained the DLLM2Rec way from exported teacher outputs.

The run is the student's (same data module, evaluation, checkpoint selection on val NDCG@10, test once on
the selected checkpoint: :mod:`recdistill.recipes.lifecycle`) with
:class:`recdistill.distill.module.DistillModule` in place of the student module.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import torch
from omegaconf import DictConfig, OmegaConf

from recdistill.config import check_choice, check_positive, check_range
from recdistill.distill.data import NEGATIVE_POOLS, DistillDataModule
from recdistill.distill.dros import RANKING_FORMS
from recdistill.distill.losses import BASE_LOSS_FORMS, CONFIDENCE_SOURCES, NEGATIVE_SHIFT, exp_neg_distance_confidences
from recdistill.distill.reliability import RULES as RELIABILITY_RULES, teacher_better_buckets
from recdistill.student.distilled import NORMALISATIONS, TIES
from recdistill.distill.module import DistillModule
from recdistill.distill.settings import AVERAGE_OVER
from recdistill.engine import describe_environment, resolve_accelerator
from recdistill.errors import ConfigError, RecdistillError
from recdistill.teacher_outputs.reader import TeacherOutputs, load_teacher_outputs, read_manifest
from recdistill.recipes.config import load_config
from recdistill.recipes.distill_weight import AUTO, train_distill_auto, wants_auto, weight_grid
from recdistill.teacher.item_embeddings import read_item_embeddings
from recdistill.recipes.distill_settings import distill_settings
from recdistill.recipes.lifecycle import (RunResult, efficiency, fit_select_evaluate, open_run, optimizer_settings,
                                          prepared_data, print_ranking_result, records_run_state, seed_run)
from recdistill.recipes.seeds import train_over_seeds
from recdistill.recipes.student import build_datamodule, validate_student_config
from recdistill.recipes.student_settings import ranking_eval_settings, student_choice, student_settings
from recdistill.student.registry import student_model
from recdistill.report.format import percent

CHECKPOINT_TEMPLATE = "distill-epoch={epoch:02d}-val_ndcg@10={val/ndcg@10:.4f}"


def validate_distill_config(cfg: DictConfig) -> None:
    validate_student_config(cfg)
    d = cfg.distill
    if not d.teacher_outputs and not (d.item_embeddings and str(d.kd.weight) != AUTO and float(d.kd.weight) == 0):
        raise ConfigError("distill.teacher_outputs is not set; pass the folder written by `recdistill export`, "
                          "e.g. distill.teacher_outputs=runs/<run>/teacher_outputs (or, for embedding "
                          "distillation alone, distill.item_embeddings=<file from recdistill embed-items> "
                          "with distill.kd.weight=0)")
    for key in ("weight", "lambda", "a_pos", "a_conf", "a_cons"):
        check_positive(cfg, f"distill.kd.{key}", allow_zero=key != "lambda", allow=(AUTO,) if key == "weight" else ())
    if wants_auto(cfg):
        weight_grid(cfg)
        check_positive(cfg, "distill.auto.after_epochs")
        check_range(cfg, "distill.auto.behind", 0.0, 1.0)
    if (wants_auto(cfg) or d.kd.weight > 0) and d.kd.a_pos + d.kd.a_conf + d.kd.a_cons <= 0:
        raise ConfigError("distill.kd.a_pos, a_conf and a_cons are all 0: the ranking weights are undefined; "
                          "set one of them > 0 or distill.kd.weight=0")
    check_positive(cfg, "distill.kd.num_negatives")
    check_choice(cfg, "distill.kd.average_over", AVERAGE_OVER)
    for key in ("top_k", "consistency_k"):
        check_positive(cfg, f"distill.kd.{key}", allow=(None,))
    check_positive(cfg, "distill.ed.gamma", allow_zero=True, allow=(AUTO,))
    check_positive(cfg, "distill.ed.mlp_layers")
    check_positive(cfg, "distill.ed.mlp_hidden")
    check_choice(cfg, "distill.ed.normalize", NORMALISATIONS)
    check_choice(cfg, "distill.ed.tie", TIES)
    check_choice(cfg, "distill.kd.reliability", RELIABILITY_RULES)
    if d.dros.enabled and d.dros.alpha:
        check_positive(cfg, "distill.dros.beta")
    validate_published_forms(cfg)
    student_model(student_choice(cfg))   # an unknown student is refused here, before a run folder


def validate_published_forms(cfg: DictConfig) -> None:
    """The options that give DLLM2Rec's code's formulas where ours differ (docs/distillation.md)."""
    check_choice(cfg, "distill.base_loss_scale", BASE_LOSS_FORMS)
    check_choice(cfg, "distill.kd.negative_term", tuple(NEGATIVE_SHIFT))
    check_choice(cfg, "distill.kd.negatives_avoid", NEGATIVE_POOLS)
    check_choice(cfg, "distill.kd.confidence", CONFIDENCE_SOURCES)
    check_choice(cfg, "distill.dros.ranking_form", RANKING_FORMS)
    if str(cfg.distill.base_loss_scale) == "published" and str(cfg.student.loss) != "bce":
        raise ConfigError(f"distill.base_loss_scale=published is DLLM2Rec's BCE (one mean over positive and negative "
                          f"logits) and needs student.loss=bce; student.loss={cfg.student.loss} has no such form "
                          "(set distill.base_loss_scale=ours)")


def distill_module(cfg: DictConfig, num_items: int, dataset_meta: dict | None = None,
                   llm_embeddings=None) -> DistillModule:
    """The distillation LightningModule from the run's settings (the resolved config saved whole in its
    checkpoint, as the student's)."""
    return DistillModule(num_items, student_settings(cfg), distill_settings(cfg), ranking_eval_settings(cfg),
                         optimizer_settings(cfg), efficiency(cfg), dataset_meta, llm_embeddings,
                         run_config=OmegaConf.to_container(cfg, resolve=True))


def load_teacher_for(cfg: DictConfig, data) -> TeacherOutputs | None:
    """The validated teacher outputs for this run's dataset (a clear error when they do not match); None
    when the run distils item embeddings alone (``distill.item_embeddings`` without teacher outputs)."""
    if not cfg.distill.teacher_outputs:
        return None
    path = Path(str(cfg.distill.teacher_outputs)).expanduser()
    top_k = cfg.distill.kd.top_k
    published_confidence = str(cfg.distill.kd.confidence) == "exp_neg_distance"
    if published_confidence:
        check_scores_are_distances(path)
    teacher = load_teacher_outputs(path, data.train, data.fingerprint, data.num_items,
                                   max_k=None if top_k is None else int(top_k), with_scores=published_confidence)
    if published_confidence:
        # w_conf normalises whatever the confidences hold: DLLM2Rec's exp(-distance) + 1e-8 in place of the softmax
        published = exp_neg_distance_confidences(torch.from_numpy(teacher.scores), torch.from_numpy(teacher.items > 0))
        teacher = replace(teacher, confidences=published.numpy())
    if float(cfg.distill.ed.gamma) > 0 and teacher.embeddings is None and not cfg.distill.item_embeddings:
        raise RecdistillError(f"{path} has no item embeddings, so embedding distillation cannot run; "
                              "set distill.ed.gamma=0 or export a teacher that writes them")
    if str(cfg.distill.kd.reliability) == "teacher_buckets":
        teacher_better_buckets(teacher.manifest.get("teacher_check"))   # refused here when the check is missing
    return teacher


def check_scores_are_distances(path: Path) -> None:
    """``distill.kd.confidence=exp_neg_distance`` reads the export's scores as minus distances: only an LLM
    export with ``teacher.export.ranking=grounded`` writes them so (its manifest's teacher says ``ranking``)."""
    teacher = read_manifest(path).get("teacher") or {}
    ranking = teacher.get("ranking", "likelihood" if teacher.get("kind") == "llm" else None)
    if ranking != "grounded":
        written_by = f"teacher.export.ranking={ranking}" if ranking else f"teacher={teacher.get('kind')}"
        raise ConfigError(f"distill.kd.confidence=exp_neg_distance needs an export whose scores are minus distances "
                          f"(teacher.export.ranking=grounded); {path} was written by {written_by}, whose scores are "
                          "not distances (or by a grounded export from before exports recorded their ranking). Set "
                          "distill.kd.confidence=softmax, or export with teacher.export.ranking=grounded")


def ed_source(cfg: DictConfig, data, teacher: TeacherOutputs | None):
    """The LLM item embeddings embedding distillation adds: ``distill.item_embeddings`` when set (the
    frozen LLM's view of each item's text, which also covers items without interactions), else the
    teacher outputs' own; None when ``distill.ed.gamma`` is 0."""
    if float(cfg.distill.ed.gamma) == 0:
        return None
    if cfg.distill.item_embeddings:
        return read_item_embeddings(str(cfg.distill.item_embeddings), data.num_items)[0]
    return teacher.embeddings


def build_distill_datamodule(cfg: DictConfig, data, teacher: TeacherOutputs | None, accelerator: str):
    if teacher is None:
        return build_datamodule(cfg, data, accelerator)
    usual = int(cfg.student.num_negatives) if cfg.student.loss == "bce" else 0
    kd = int(cfg.distill.kd.num_negatives) if cfg.distill.kd.weight > 0 else 0
    rule = str(cfg.distill.kd.reliability)
    buckets = teacher_better_buckets(teacher.manifest.get("teacher_check")) if rule == "teacher_buckets" else None
    # one draw serves both losses (DLLM2Rec shares them too)
    return build_datamodule(cfg, data, accelerator, DistillDataModule, num_negatives=max(usual, kd), teacher=teacher,
                            reliability=rule, reliable_buckets=buckets,
                            negatives_avoid=str(cfg.distill.kd.negatives_avoid))


@records_run_state
def train_distill(cfg: DictConfig, extra_callbacks: list | None = None) -> RunResult:
    """Train with distillation, select on val NDCG@10, evaluate the selected checkpoint on val and test.
    ``info["teacher"]`` describes the teacher outputs used; ``extra_callbacks`` join the Trainer's.
    ``distill.kd.weight=auto``: one run per weight of ``distill.auto.kd_weights``, the best on validation
    returned (:mod:`recdistill.recipes.distill_weight`)."""
    validate_distill_config(cfg)
    if wants_auto(cfg):
        return train_distill_auto(cfg, _train_distill_once, extra_callbacks)
    return _train_distill_once(cfg, extra_callbacks)


def _train_distill_once(cfg: DictConfig, extra_callbacks: list | None = None) -> RunResult:
    seed_run(cfg)
    data = prepared_data(cfg)
    teacher = load_teacher_for(cfg, data)  # before the run folder exists: bad input leaves nothing behind
    run = open_run(cfg)
    dm = build_distill_datamodule(cfg, data, teacher, resolve_accelerator(cfg.efficiency.accelerator))
    embeddings = ed_source(cfg, data, teacher)
    module = distill_module(cfg, data.num_items, data.meta(), embeddings)
    module.compile_model(cfg.efficiency.compile)

    metrics, best, meter, trainer = fit_select_evaluate(cfg, run, module, dm, CHECKPOINT_TEMPLATE, extra_callbacks)
    metrics["teacher_coverage"] = dm.coverage if teacher is not None else 0.0
    if teacher is not None and str(cfg.distill.kd.reliability) != "none":
        # the share of exported positions the reliability rule kept
        metrics["teacher_positions_kept"] = (dm.coverage_count / dm.exported_positions) if dm.exported_positions else 0.0
    teacher_info = {"path": None if teacher is None else str(teacher.path), "rows": 0 if teacher is None else len(teacher),
                    "top_k": None if teacher is None else teacher.top_k,
                    "teacher": None if teacher is None else teacher.manifest.get("teacher"),
                    "item_embeddings": str(cfg.distill.item_embeddings) if cfg.distill.item_embeddings else None,
                    "embedding_dim": None if embeddings is None else int(embeddings.shape[1])}
    if trainer.is_global_zero:
        run.finish("distill", metrics, meter.records, describe_environment(),
                   extra={"best_checkpoint": best, "dataset": data.meta(), "teacher_outputs": teacher_info})
    return RunResult(run.path, metrics, meter.records, {"best_checkpoint": best}, {"teacher": teacher_info})


def print_distilled(result: RunResult) -> None:
    if result.metrics.get("student_alone"):  # the weight search kept the student run: no teacher in it
        print_ranking_result(result, "validation kept the student alone (no weight of the teacher beat it); "
                             "metrics of the student's best checkpoint")
        return
    print_ranking_result(result, f"distilled student trained (teacher outputs cover "
                         f"{percent(result.metrics['teacher_coverage'])} of the training targets); metrics of the best checkpoint")


def train_command(args) -> int:
    if getattr(args, "seeds", None) is not None:
        train_over_seeds("distill", args, train_distill, lambda result, cfg: print_distilled(result))
        return 0
    result = train_distill(load_config("distill", args.overrides, args.config, applied=True))
    print_distilled(result)
    return 0
