"""Config glue of the candidate protocol (LLaRA / iLoRA's, :mod:`recdistill.evaluation`): ``eval.candidates``
-> :class:`CandidateProtocol`, and one function that both ``eval student`` (``eval.protocol=llara``) and
``eval teacher`` / ``train teacher`` (``teacher.eval.protocol=llara``) call, so their candidate sets come
from the same settings and the same drawing code."""

from __future__ import annotations

from omegaconf import DictConfig

from recdistill.config import check_choice
from recdistill.errors import ConfigError
from recdistill.evaluation.candidates import CandidateProtocol, draw_candidate_sets
from recdistill.evaluation.summary import candidate_report
from recdistill.evaluation.student_scores import student_metrics
from recdistill.recipes.teacher_settings import eval_template_setting
from recdistill.teacher.candidate_protocol import CandidateProtocolSettings, teacher_metrics

SPLITS = ("val", "test")
TEACHER_PROTOCOLS = ("likelihood", "llara")


def candidate_protocol(cfg: DictConfig) -> CandidateProtocol:
    c = cfg.eval.candidates
    return CandidateProtocol(int(c.history_items), int(c.num_candidates), str(c.exclude), int(c.draws), int(c.seed),
                             None if c.limit_users is None else int(c.limit_users))


def run_candidate_protocol(cfg: DictConfig, data, student, teacher_fn=None) -> tuple[dict, dict]:
    """Every draw of every split in ``eval.candidates.splits``: the student (and the teacher when
    ``teacher_fn(sets)`` is given) on the same sets. Returns (flat metrics ``<split>/llara_*``, report)."""
    protocol = candidate_protocol(cfg)
    check_choice(cfg, "eval.candidates.student_window", ("shown", "full"))
    window = protocol.history_items if str(cfg.eval.candidates.student_window) == "shown" else None
    splits = list(cfg.eval.candidates.splits)
    if not splits or any(split not in SPLITS for split in splits):
        raise ConfigError(f"eval.candidates.splits={splits} is not valid; choose among: {', '.join(SPLITS)}")
    metrics, report = {}, {"protocol": vars(protocol), "student_window": window, "splits": {}}
    for split in splits:
        sets = [draw_candidate_sets(data, split, protocol, d) for d in range(protocol.draws)]
        result = candidate_report(sets, teacher_fn, lambda s: student_metrics(student, s, window))
        report["splits"][split] = result
        metrics.update({f"{split}/llara_{k}": v for k, v in result["summary"].items()})
    return metrics, report


def wants_candidate_protocol(cfg: DictConfig) -> bool:
    """``eval.protocol=llara`` (``eval student``)."""
    check_choice(cfg, "eval.protocol", ("full", "llara"))
    return str(cfg.eval.protocol) == "llara"


def wants_teacher_protocol(teacher_cfg: DictConfig) -> bool:
    """``teacher.eval.protocol=llara`` (``eval teacher``, and the end of ``train teacher``)."""
    if "protocol" not in teacher_cfg.eval:
        return False
    protocol = str(teacher_cfg.eval.protocol)
    if protocol not in TEACHER_PROTOCOLS:
        raise ConfigError(f"teacher.eval.protocol={protocol!r} is not valid; choose one of: "
                          f"{', '.join(TEACHER_PROTOCOLS)}")
    return protocol == "llara"


def run_teacher_protocol(cfg: DictConfig, teacher_cfg: DictConfig, teacher, encoder, data, run) -> dict:
    """``<split>/llara_*`` metrics (teacher, student, chance; means and 95 % half-widths); the whole
    report, every draw included, goes to ``<run>/llara_protocol.json``."""
    e = teacher_cfg.eval
    settings = CandidateProtocolSettings(template=eval_template_setting(teacher_cfg.prompt.eval_template),
                                         template_seed=int(teacher_cfg.prompt.seed),
                                         batch_size=int(cfg.train.eval_batch_size),
                                         generate=True, likelihood=str(e.method) != "generate",
                                         max_new_tokens=int(cfg.eval.candidates.max_new_tokens),
                                         candidate_batch_size=int(e.candidate_batch_size), score_norm=str(e.score_norm),
                                         kv_cache=bool(e.kv_cache))
    metrics, report = run_candidate_protocol(
        cfg, data, teacher.student, teacher_fn=lambda sets: teacher_metrics(teacher, encoder, encoder.titles, sets, settings))
    run.write_json("llara_protocol.json", report)
    return metrics
