"""Build a Lightning Trainer from the efficiency settings (:class:`recdistill.engine.settings.Efficiency`)."""

from __future__ import annotations

import warnings
from contextlib import contextmanager

import lightning as L
import torch
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from recdistill.engine.noise import quiet_noise
from recdistill.engine.precision import resolve_accelerator, resolve_precision
from recdistill.engine.progress import LogIntervalByLength, LogProgress, QuietProgressBar, stdout_is_terminal
from recdistill.engine.rundir import RunDir
from recdistill.engine.settings import Efficiency
from recdistill.errors import ConfigError

STRATEGIES = ("auto", "ddp", "ddp_spawn", "ddp_find_unused_parameters_true", "fsdp", "deepspeed")


def _strategy(name: str, fsdp_wrap: set[type] | None):
    if name == "fsdp" and fsdp_wrap:
        from lightning.pytorch.strategies import FSDPStrategy

        # use_orig_params (Lightning's default) lets frozen base weights and trained adapters share a unit
        return FSDPStrategy(auto_wrap_policy=set(fsdp_wrap))
    return name


@contextmanager
def full_parameters(trainer: L.Trainer, writeback: bool = False):
    """Every parameter whole inside the block, on every process: under FSDP each process holds only its
    shard of each (a saved adapter would be that shard); other strategies hold them whole already. Every
    process must enter the block (gathering is a collective); ``writeback`` keeps what the block loads."""
    from lightning.pytorch.strategies import FSDPStrategy

    if not isinstance(trainer.strategy, FSDPStrategy):
        yield
        return
    from torch.distributed.fsdp import FullyShardedDataParallel

    with FullyShardedDataParallel.summon_full_params(trainer.strategy.model, writeback=writeback):
        yield


def seed_everything(seed: int, deterministic: bool = False) -> None:
    L.seed_everything(int(seed), workers=True, verbose=False)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)


def quiet_lightning() -> None:
    """Silence Lightning's tips that do not apply to us (we choose num_workers deliberately)."""
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    warnings.filterwarnings("ignore", message=".*TensorBoard support.*")
    warnings.filterwarnings("ignore", message=".*LeafSpec.*")
    warnings.filterwarnings("ignore", message=".*set_vital.*")  # torchdata's StatefulDataLoader on torch >= 2.9
    # A resumed run continues in its own checkpoints/ folder, which is then never empty.
    warnings.filterwarnings("ignore", message=".*Checkpoint directory .* exists and is not empty.*")


def build_trainer(
    eff: Efficiency,
    run_dir: RunDir | None,
    callbacks: list | None = None,
    max_epochs: int | None = None,
    max_steps: int = -1,
    limit_train_batches=None,
    limit_val_batches=None,
    check_val_every_n_epoch: int = 1,
    progress_bar: bool = True,
    loggers: bool = True,
    fsdp_wrap: set[type] | None = None,
    llm: bool = False,
    **extra,
) -> L.Trainer:
    """A Trainer with accelerator, devices, strategy, precision, accumulation, clipping and
    determinism taken from ``eff`` (the ``efficiency`` settings).

    ``fsdp_wrap``: with ``efficiency.strategy=fsdp``, the layer classes that become FSDP units of their own
    (a transformer's decoder layers), so each process holds only its shard of every layer between uses;
    without it FSDP wraps the whole model as one unit and every process gathers all of it at once.

    ``llm``: the model is an LLM, so ``precision=auto`` on a CPU may pick bf16 (``resolve_precision``)."""
    accumulate = eff.accumulate_grad_batches
    if isinstance(accumulate, bool) or not isinstance(accumulate, int) or accumulate <= 0:
        raise ConfigError(f"efficiency.accumulate_grad_batches={accumulate!r} is not valid; expected a number > 0")
    if str(eff.strategy) not in STRATEGIES:
        raise ConfigError(f"efficiency.strategy={eff.strategy!r} is not valid; choose one of: {', '.join(STRATEGIES)}")
    accelerator = resolve_accelerator(eff.accelerator)
    if str(eff.strategy) == "fsdp" and accelerator != "gpu":
        raise ConfigError("efficiency.strategy=fsdp needs CUDA GPUs (Lightning's FSDP strategy refuses "
                          "accelerator=cpu); on CPUs use efficiency.strategy=ddp")
    precision = resolve_precision(eff.precision, accelerator, llm=llm)
    torch.set_float32_matmul_precision(str(eff.matmul_precision))
    quiet_lightning()
    quiet_noise()
    # a bar on a terminal, a line every 30 s in a log; the metric-logging interval follows the run's length
    terminal = stdout_is_terminal()
    callbacks = [*(callbacks or []), LogIntervalByLength()]
    if progress_bar:
        callbacks.append(QuietProgressBar() if terminal else LogProgress())
    logger_list = []
    if loggers and run_dir is not None:
        logger_list = [
            CSVLogger(save_dir=str(run_dir.logs), name="", version="csv"),
            TensorBoardLogger(save_dir=str(run_dir.logs), name="", version="tensorboard", default_hp_metric=False),
        ]
    return L.Trainer(
        accelerator=accelerator,
        devices=eff.devices,
        num_nodes=int(eff.num_nodes),
        strategy=_strategy(str(eff.strategy), fsdp_wrap),
        precision=precision,
        accumulate_grad_batches=int(eff.accumulate_grad_batches),
        gradient_clip_val=eff.gradient_clip_val,
        deterministic=bool(eff.deterministic),
        max_epochs=max_epochs,
        max_steps=max_steps,
        limit_train_batches=limit_train_batches,
        limit_val_batches=limit_val_batches,
        check_val_every_n_epoch=check_val_every_n_epoch,
        callbacks=callbacks,
        logger=logger_list if logger_list else False,
        enable_checkpointing=any(isinstance(c, L.pytorch.callbacks.ModelCheckpoint) for c in callbacks),
        enable_progress_bar=progress_bar and terminal,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=str(run_dir.path) if run_dir is not None else None,
        log_every_n_steps=extra.pop("log_every_n_steps", 10),  # replaced at fit start by LogIntervalByLength
        **extra,
    )
