"""Config glue of the evaluation protocols: ``eval.protocol`` of ``eval student`` looked up in the registry
(:mod:`recdistill.evaluation.protocols`), and the candidate protocol (LLaRA / iLoRA's) with the teacher
added: ``eval teacher`` / ``train teacher`` (``teacher.eval.protocol=llara``) and ``eval student``
(``eval.protocol=llara``) call the same function, so their candidate sets come from the same settings and
the same drawing code."""

from __future__ import annotations

from omegaconf import DictConfig, OmegaConf

from recdistill.errors import ConfigError
from recdistill.evaluation.protocols import Protocol, protocol_to_run
from recdistill.evaluation.protocols.llara import candidate_protocol, llara_settings, run_llara
from recdistill.recipes.teacher_settings import eval_template_setting
from recdistill.teacher.candidate_protocol import CandidateProtocolSettings, teacher_metrics

TEACHER_PROTOCOLS = ("likelihood", "llara")
__all__ = ["candidate_protocol", "run_candidate_protocol", "student_protocol", "wants_teacher_protocol",
           "run_teacher_protocol"]  # candidate_protocol: eval.candidates read, for tests that draw the sets


def run_candidate_protocol(cfg: DictConfig, data, student, teacher_fn=None) -> tuple[dict, dict]:
    """Every draw of every split in ``eval.candidates.splits``: the student (and the teacher when
    ``teacher_fn(sets)`` is given) on the same sets. Returns (flat metrics ``<split>/llara_*``, report)."""
    return run_llara(data, student, llara_settings(eval_values(cfg)), teacher_fn)


def eval_values(cfg: DictConfig) -> dict:
    """The ``eval`` group as plain values, what a protocol's settings are read from."""
    return OmegaConf.to_container(cfg.eval, resolve=True)


def student_protocol(cfg: DictConfig) -> tuple[Protocol, object] | None:
    """``eval.protocol`` of ``eval student``: None for ``full`` (computed by every evaluation), else the
    registered protocol to run on demand and its settings, read and checked before anything runs."""
    protocol = protocol_to_run(str(cfg.eval.protocol))
    if protocol is None:
        return None
    return protocol, protocol.read_settings(eval_values(cfg)) if protocol.read_settings else None


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
                                         kv_cache=bool(e.kv_cache), min_new_tokens=int(e.min_new_tokens))
    metrics, report = run_candidate_protocol(
        cfg, data, teacher.student, teacher_fn=lambda sets: teacher_metrics(teacher, encoder, encoder.titles, sets, settings))
    run.write_json("llara_protocol.json", report)
    return metrics
