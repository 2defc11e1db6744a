"""The candidate protocol of LLaRA / iLoRA (``eval.protocol=llara``, keys ``<split>/llara_*``): seeded
draws of candidate sets (``eval.candidates``), the student (and, from ``eval teacher``, the teacher) on
the same sets, means with 95 % half-widths and chance. ``recipes/protocols.py`` adds the teacher."""

from __future__ import annotations

from dataclasses import dataclass

from recdistill.errors import ConfigError
from recdistill.evaluation.candidates import CandidateProtocol, draw_candidate_sets
from recdistill.evaluation.protocols.notes import users_line
from recdistill.evaluation.protocols.registry import SPLITS, Protocol, register
from recdistill.evaluation.student_scores import student_metrics
from recdistill.evaluation.summary import candidate_report


@dataclass(frozen=True)
class LlaraSettings:
    protocol: CandidateProtocol
    student_window: int | None   # the newest items the student reads; None = its whole max_len
    splits: tuple[str, ...]


WINDOWS = ("shown", "full")


def candidate_protocol(evaluation: dict) -> CandidateProtocol:
    """From the ``eval`` group's values (a plain dict; the recipe reads the config)."""
    c = evaluation["candidates"]
    return CandidateProtocol(int(c["history_items"]), int(c["num_candidates"]), str(c["exclude"]), int(c["draws"]),
                             int(c["seed"]), None if c["limit_users"] is None else int(c["limit_users"]))


def llara_settings(evaluation: dict) -> LlaraSettings:
    """``eval.candidates`` (from the ``eval`` group's values) checked."""
    protocol = candidate_protocol(evaluation)
    c = evaluation["candidates"]
    if c["student_window"] not in WINDOWS:
        raise ConfigError(f"eval.candidates.student_window={c['student_window']!r} is not valid; choose one of: "
                          f"{', '.join(WINDOWS)}")
    window = protocol.history_items if c["student_window"] == "shown" else None
    splits = list(c["splits"])
    if not splits or any(split not in SPLITS for split in splits):
        raise ConfigError(f"eval.candidates.splits={splits} is not valid; choose among: {', '.join(SPLITS)}")
    return LlaraSettings(protocol, window, tuple(splits))


def run_llara(data, student, settings: LlaraSettings, teacher_fn=None) -> tuple[dict, dict]:
    """Every draw of every split: the student (and the teacher when ``teacher_fn(sets)`` is given) on the
    same sets. Returns (flat metrics ``<split>/llara_*``, report)."""
    protocol, window = settings.protocol, settings.student_window
    metrics, report = {}, {"protocol": vars(protocol), "student_window": window, "splits": {}}
    for split in settings.splits:
        sets = [draw_candidate_sets(data, split, protocol, d) for d in range(protocol.draws)]
        result = candidate_report(sets, teacher_fn, lambda s: student_metrics(student, s, window))
        report["splits"][split] = result
        metrics.update({f"{split}/llara_{k}": v for k, v in result["summary"].items()})
    return metrics, report


def _notes(groups: dict, runs: list[tuple[str, dict]]) -> list[str]:
    lines = [users_line(runs, "llara_users"),
             "Each row is the mean over the seeded draws; its 95 % half-width (`*_ci95`) is in the appendix."]
    for label, metrics in runs:
        for split in ("test", "val"):  # chance depends only on the number of candidates: one split says it
            chance = {k.split("llara_chance_", 1)[1]: v for k, v in metrics.items()
                      if k.startswith(f"{split}/llara_chance_")}
            if chance:
                shown = ", ".join(f"{name} {value:.4f}" for name, value in sorted(chance.items()))
                return [*lines, f"Chance (a random order of the candidates, {label}): {shown}."]
    return lines


LLARA = register(Protocol(
    name="llara", prefix="llara_", title="Candidate protocol of LLaRA / iLoRA",
    about=("The target among drawn candidates (eval.candidates: the target and random items the prompt does not "
           "show), the teacher and the student on the same sets; not comparable with the full-catalogue numbers."),
    metric=r"(?:teacher|student)_(?:cand\d+_(?:hr|ndcg|recall|mrr)@\d+|valid_ratio|hr@1_valid|hr@1_all)",
    rows=r"(?:teacher|student)_(?:cand\d+_(?:hr|ndcg|mrr)@\d+|valid_ratio|hr@1_valid|hr@1_all)",
    notes=_notes, order=3, read_settings=llara_settings,
    run=run_llara))
