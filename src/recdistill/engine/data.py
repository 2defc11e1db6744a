"""DataLoader keyword arguments from the efficiency settings."""

from __future__ import annotations

from recdistill.engine.settings import Efficiency


def dataloader_kwargs(eff: Efficiency, accelerator: str, shuffle: bool = False) -> dict:
    """The DataLoader knobs: num_workers, pin_memory, persistent_workers, prefetch_factor.

    ``persistent_workers`` and ``prefetch_factor`` only exist for worker processes, so they are passed
    only when ``num_workers > 0`` (PyTorch raises otherwise).
    """
    num_workers = int(eff.num_workers)
    pin = eff.pin_memory
    pin_memory = accelerator == "gpu" if pin == "auto" else bool(pin)
    kwargs: dict = {"num_workers": num_workers, "pin_memory": pin_memory, "shuffle": shuffle}
    if num_workers > 0:
        kwargs["persistent_workers"] = bool(eff.persistent_workers)
        kwargs["prefetch_factor"] = int(eff.prefetch_factor)
    return kwargs
