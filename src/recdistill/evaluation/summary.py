"""The candidate protocol's results: every seeded draw, then means with 95 % half-widths and chance."""

from __future__ import annotations

from recdistill.evaluation.candidates import CandidateSets, chance_metrics
from recdistill.evaluation.intervals import summarize


def candidate_report(sets_per_draw: list[CandidateSets], teacher_fn=None, student_fn=None,
                     sample_answers: int = 5) -> dict:
    """Runs ``teacher_fn(sets)`` and ``student_fn(sets)`` (either may be None) on every draw. Returns
    ``{"draws": [...], "summary": {...}, "sample_answers": [...]}``: per-draw metrics, their means with
    95 % half-widths (``*_ci95``), teacher metrics named ``teacher_*``, student ones ``student_*``, the
    ``chance_*`` values of a random ranking, and the first generated answers of the first draw."""
    draws, samples = [], []
    for sets in sets_per_draw:
        row: dict = {}
        if teacher_fn is not None:
            got = teacher_fn(sets)
            if not samples and "_texts" in got:
                samples = [{"user": int(u), "answer": t} for u, t in zip(sets.users, got["_texts"][:sample_answers])]
            row.update({f"teacher_{k}": float(v) for k, v in got.items() if not k.startswith("_")})
        if student_fn is not None:
            row.update({f"student_{k}": float(v) for k, v in student_fn(sets).items()})
        draws.append(row)
    summary = summarize(draws) if draws and draws[0] else {}
    summary.update({f"chance_{k}": v for k, v in chance_metrics(int(sets_per_draw[0].candidates.shape[1])).items()})
    summary["users"] = float(len(sets_per_draw[0].users))
    summary["draws"] = float(len(draws))
    return {"draws": [{"draw": s.draw, **d} for s, d in zip(sets_per_draw, draws)], "summary": summary,
            "sample_answers": samples}


def summary_lines(metrics: dict) -> list[str]:
    """``<split>/llara_*`` metrics as printable lines: mean +- 95 % half-width, teacher beside student and chance."""
    lines = []
    for key in sorted(k for k in metrics if "/llara_" in k and not k.endswith("_ci95")):
        half = metrics.get(f"{key}_ci95")
        value = metrics[key]
        text = f"{value:.4f}" if half is None or half != half else f"{value:.4f} +- {half:.4f}"
        lines.append(f"  {key} = {text}")
    return lines
