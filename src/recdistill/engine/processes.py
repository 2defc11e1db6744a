"""Several processes for inference work (the export) through Lightning Fabric's DDP strategy: Fabric starts
the extra processes itself (it re-runs the command once per extra device, like the Trainer does for
training), or joins the ones ``torchrun`` started; on several machines it reads ``MASTER_ADDR``,
``MASTER_PORT`` and ``NODE_RANK`` (see docs/scaling.md). Nothing here is home-made: rank, world size and
barrier are Fabric's (gloo on CPUs, NCCL on GPUs).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Callable

import torch

from recdistill.errors import ConfigError


@dataclass(frozen=True)
class Processes:
    """The processes sharing one piece of work: this one's ``rank`` among ``world_size``, and a ``barrier``
    that returns when all have reached it (one process: nothing to wait for)."""

    rank: int = 0
    world_size: int = 1
    barrier: Callable[[], None] = field(default=lambda: None)


def _torchrun_layout() -> tuple[int, int] | None:
    """(processes per machine, machines) when this process was started by ``torchrun``, else None."""
    if not (torch.distributed.is_available() and torch.distributed.is_torchelastic_launched()):
        return None
    local = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    return local, max(1, int(os.environ.get("WORLD_SIZE", "1")) // local)


def launch_processes(devices: int, num_nodes: int, device: str, key: str = "export") -> tuple[Processes, str]:
    """Start (or join) ``devices`` processes on each of ``num_nodes`` machines and return this process's
    share and its torch device (``cuda:<local rank>`` on GPUs). One process in all: nothing is started.

    Under ``torchrun`` the layout is torchrun's (``--nproc-per-node``, ``--nnodes``); asking for another
    one is refused."""
    for name, value in (("devices", devices), ("num_nodes", num_nodes)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"{key}.{name}={value!r} is not valid; expected an integer >= 1")
    launched = _torchrun_layout()
    if launched is not None:
        if (devices, num_nodes) not in ((1, 1), launched):
            raise ConfigError(f"{key}.devices={devices} {key}.num_nodes={num_nodes} but torchrun started "
                              f"{launched[0]} processes on each of {launched[1]} machines; leave them at 1 "
                              "under torchrun (its layout is used)")
        devices, num_nodes = launched
    if devices * num_nodes == 1:
        return Processes(), device
    if device.startswith("cuda") and devices > torch.cuda.device_count():
        raise ConfigError(f"{key}.devices={devices} but this machine has {torch.cuda.device_count()} CUDA devices")
    from lightning.fabric import Fabric

    fabric = Fabric(accelerator="cuda" if device.startswith("cuda") else "cpu", devices=devices,
                    num_nodes=num_nodes, strategy="ddp")
    fabric.launch()
    return Processes(fabric.global_rank, fabric.world_size, fabric.barrier), str(fabric.device)
