"""LLaRA / iLoRA's reading of a generated answer, as their ``validation_step`` and ``calculate_hr1`` do it.

The decoded generation is stripped and cut at its first newline; then answer, target and candidate titles
are stripped and lower-cased. Every candidate title contained in the answer (a substring test) is
collected; the answer is *valid* when exactly one is, and a *hit* when that one is the target.
ValidRatio = valid / all; HR@1 is reported over the valid answers (their "HR@1") and over all answers.
"""

from __future__ import annotations

import math


def first_line(generated: str) -> str:
    return generated.strip().split("\n")[0]


def _norm(text: str) -> str:
    return text.strip().lower().strip()


def parse_answer(generated: str, candidate_titles: list[str]) -> str | None:
    """The one candidate title (normalised) the answer names, or None when it names none or several."""
    answer = _norm(first_line(generated))
    found = [title for title in (_norm(t) for t in candidate_titles) if title in answer]
    return found[0] if len(found) == 1 else None


def generation_metrics(texts: list[str], candidate_titles: list[list[str]], targets: list[str]) -> dict[str, float]:
    valid = hits = 0
    for text, titles, target in zip(texts, candidate_titles, targets):
        chosen = parse_answer(text, titles)
        if chosen is not None:
            valid += 1
            hits += int(chosen == _norm(target))
    n = len(texts)
    return {"valid_ratio": valid / n if n else math.nan, "hr@1_valid": hits / valid if valid else 0.0,
            "hr@1_all": hits / n if n else math.nan}
