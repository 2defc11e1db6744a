"""Config glue for ``teacher.eval.protocol=llara``: the teacher and its frozen student on the candidate
sets of ``eval.candidates`` (drawn by :mod:`recdistill.protocols.candidates`, as for ``eval student``)."""

from __future__ import annotations

from omegaconf import DictConfig

from recdistill.errors import ConfigError
from recdistill.protocols.from_config import run_candidate_protocol, teacher_protocol_fn

PROTOCOLS = ("likelihood", "llara")


def wants_llara(teacher_cfg: DictConfig) -> bool:
    if "protocol" not in teacher_cfg.eval:
        return False
    protocol = str(teacher_cfg.eval.protocol)
    if protocol not in PROTOCOLS:
        raise ConfigError(f"teacher.eval.protocol={protocol!r} is not valid; choose one of: {', '.join(PROTOCOLS)}")
    return protocol == "llara"


def run_teacher_protocol(cfg: DictConfig, teacher_cfg: DictConfig, teacher, encoder, data, run) -> dict:
    """``<split>/llara_*`` metrics (teacher, student, chance; means and 95 % half-widths); the whole
    report, every draw included, goes to ``<run>/llara_protocol.json``."""
    fn = teacher_protocol_fn(cfg, teacher_cfg, teacher, encoder, data.titles)
    metrics, report = run_candidate_protocol(cfg, data, teacher.student, teacher_fn=fn)
    run.write_json("llara_protocol.json", report)
    return metrics
