"""Teacher outputs as files: the writer (sharded, resumable), the reader (validated against a prepared
dataset) and the rankers that produce them. Format: docs/architecture.md, "Teacher outputs"."""

from recdistill.export.format import PositionPlan, plan_positions
from recdistill.export.rankers import CandidateSource, Ranker, SASRecRanker
from recdistill.export.reader import TeacherOutputs, load_teacher_outputs, read_manifest
from recdistill.export.writer import export_teacher_outputs

__all__ = [
    "CandidateSource",
    "PositionPlan",
    "Ranker",
    "SASRecRanker",
    "TeacherOutputs",
    "export_teacher_outputs",
    "load_teacher_outputs",
    "plan_positions",
    "read_manifest",
]
