"""The one-command pipeline: ``recdistill pipeline [--profile demo|smoke|full] [--from STAGE]``.

See :mod:`recdistill.pipeline.runner` for how stages are skipped, rerun and resumed, and
:mod:`recdistill.pipeline.stages` for what each stage runs and hands to the next.
"""

from recdistill.pipeline.runner import run, run_pipeline
from recdistill.pipeline.stages import ORDER, STAGES

__all__ = ["run", "run_pipeline", "ORDER", "STAGES"]
