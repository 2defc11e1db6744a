"""What every workload shares: Trainer, optimizer and scheduler from the efficiency config, stage
measurements, run directories and result records."""

from recdistill.engine.data import dataloader_kwargs
from recdistill.engine.measure import StageMeter, StageTracker, measure_stage
from recdistill.engine.memory import peak_memory, reset_peak_memory
from recdistill.engine.environment import describe_environment
from recdistill.engine.optim import build_optimizer, build_scheduler, configure_optimizers
from recdistill.engine.precision import resolve_accelerator, resolve_device, resolve_dtype, resolve_precision
from recdistill.engine.settings import Efficiency, OptimizerSettings
from recdistill.engine.rundir import RunDir, atomic_write_bytes, atomic_write_json, atomic_write_text
from recdistill.engine.trainer import build_trainer, seed_everything

__all__ = [
    "Efficiency",
    "OptimizerSettings",
    "StageMeter",
    "StageTracker",
    "describe_environment",
    "measure_stage",
    "peak_memory",
    "reset_peak_memory",
    "build_optimizer",
    "build_scheduler",
    "configure_optimizers",
    "resolve_accelerator",
    "resolve_device",
    "resolve_dtype",
    "resolve_precision",
    "RunDir",
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "build_trainer",
    "seed_everything",
    "dataloader_kwargs",
]
