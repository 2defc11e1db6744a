"""Ranking metrics shared by the student, the teacher and distillation."""

from recdistill.evaluation.ranking import (
    METRIC_NAMES,
    metrics_from_ranks,
    rank_of_targets,
    sampled_rank_of_targets,
)

__all__ = ["METRIC_NAMES", "metrics_from_ranks", "rank_of_targets", "sampled_rank_of_targets"]
