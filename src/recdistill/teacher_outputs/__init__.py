"""Teacher outputs as files: the writer (sharded, resumable), the reader (validated against a prepared
dataset) and the rankers that produce them. Format: docs/architecture.md, "Teacher outputs"."""

from recdistill.teacher_outputs.format import PositionPlan, plan_positions
from recdistill.teacher_outputs.rankers import CandidateSource, Ranker, SASRecRanker
from recdistill.teacher_outputs.reader import TeacherOutputs, load_teacher_outputs, read_manifest
from recdistill.teacher_outputs.writer import export_teacher_outputs

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
