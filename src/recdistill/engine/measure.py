"""Per-stage measurements: wall seconds, items per second, peak memory.

Stages nest (an epoch inside fit, validation inside an epoch). Peak memory is reset when a stage starts,
so before each reset the current peak is folded into every stage still open; a parent's peak is
therefore the maximum over its whole span, children included.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable

import lightning as L
import torch

from recdistill.engine.memory import merge_peaks, probe


def _default_items(batch) -> int:
    if isinstance(batch, dict):
        batch = next(iter(batch.values()))
    if isinstance(batch, (list, tuple)):
        batch = batch[0]
    if isinstance(batch, torch.Tensor):
        return int(batch.shape[0]) if batch.dim() > 0 else 1
    return 1


class _Stage:
    def __init__(self, name: str, warmup_steps: int):
        self.name = name
        self.warmup_steps = warmup_steps
        self.start = time.perf_counter()
        self.peak: dict = {}
        self.steps = 0
        self.items: dict[str, float] = {}
        self.items_after_warmup: dict[str, float] = {}
        self.warm_start: float | None = None if warmup_steps > 0 else self.start
        # Throughput spans warm start .. the last step's end, so work after the last step (an epoch's
        # validation and checkpointing, which Lightning runs before the epoch ends) is not counted.
        self.last_step_end: float | None = None

    def add(self, counts: dict[str, float]) -> None:
        self.steps += 1
        self.last_step_end = time.perf_counter()
        for unit, n in counts.items():
            self.items[unit] = self.items.get(unit, 0) + n
            if self.warm_start is not None and self.steps > self.warmup_steps:
                self.items_after_warmup[unit] = self.items_after_warmup.get(unit, 0) + n
        if self.warm_start is None and self.steps >= self.warmup_steps:
            self.warm_start = time.perf_counter()

    def finish(self) -> dict:
        end = time.perf_counter()
        seconds = end - self.start
        record = {"stage": self.name, "seconds": round(seconds, 4), "steps": self.steps}
        measured_after_warmup = bool(self.items_after_warmup) and self.warm_start is not None
        for unit, total in self.items.items():
            record[f"{unit}"] = total
            if measured_after_warmup and unit in self.items_after_warmup:
                span = max((self.last_step_end or end) - self.warm_start, 1e-9)
                record[f"{unit}_per_second"] = round(self.items_after_warmup[unit] / span, 2)
            else:
                record[f"{unit}_per_second"] = round(total / max(seconds, 1e-9), 2)
        record["warmup_steps_excluded"] = self.warmup_steps if measured_after_warmup else 0
        record.update(self.peak)
        return record


class StageTracker:
    """The stack of open stages and the finished records. Used by :class:`StageMeter` and
    :func:`measure_stage`."""

    def __init__(self, warmup_steps: int = 2):
        self.warmup_steps = warmup_steps
        self.open: list[_Stage] = []
        self.records: list[dict] = []
        self.probe = probe()

    def _fold(self) -> None:
        reading = self.probe.read()
        for stage in self.open:
            stage.peak = merge_peaks(stage.peak, reading)

    def start(self, name: str, warmup_steps: int | None = None) -> _Stage:
        self._fold()
        self.probe.reset()
        stage = _Stage(name, self.warmup_steps if warmup_steps is None else warmup_steps)
        self.open.append(stage)
        return stage

    def end(self, name: str) -> dict | None:
        self._fold()
        for i in range(len(self.open) - 1, -1, -1):
            if self.open[i].name == name:
                stage = self.open.pop(i)
                record = stage.finish()
                self.records.append(record)
                return record
        return None


class StageMeter(L.Callback):
    """Lightning callback recording fit, every epoch, validation and test.

    Args:
        items_fn: maps a batch to ``{unit: count}`` (for example ``{"sequences": 128}`` or
            ``{"tokens": 4096, "answer_tokens": 300}``) or to an int, counted as ``unit``.
        unit: the name used when ``items_fn`` returns an int.
        warmup_steps: the first steps of each stage excluded from throughput.
    """

    def __init__(self, items_fn: Callable | None = None, unit: str = "sequences", warmup_steps: int = 2,
                 tracker: StageTracker | None = None):
        self.items_fn = items_fn or _default_items
        self.unit = unit
        self.tracker = tracker or StageTracker(warmup_steps)
        self._val_count = 0

    @property
    def records(self) -> list[dict]:
        return self.tracker.records

    def _counts(self, batch) -> dict:
        counts = self.items_fn(batch)
        return counts if isinstance(counts, dict) else {self.unit: counts}

    def on_fit_start(self, trainer, pl_module):
        self.tracker.start("fit")

    def on_fit_end(self, trainer, pl_module):
        self.tracker.end("fit")

    def on_train_epoch_start(self, trainer, pl_module):
        self.tracker.start(f"epoch_{trainer.current_epoch}")

    def on_train_epoch_end(self, trainer, pl_module):
        # Lightning runs validation before on_train_epoch_end; the epoch record includes it.
        self.tracker.end(f"epoch_{trainer.current_epoch}")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        counts = self._counts(batch)
        for stage in self.tracker.open:
            if stage.name == "fit" or stage.name.startswith("epoch_"):
                stage.add(counts)

    def on_validation_start(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        self.tracker.start(f"validation_{self._val_count}", warmup_steps=0)

    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        self.tracker.end(f"validation_{self._val_count}")
        self._val_count += 1

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        if trainer.sanity_checking:
            return
        for stage in self.tracker.open:
            if stage.name.startswith("validation_"):
                stage.add(self._counts(batch))

    def on_test_start(self, trainer, pl_module):
        self.tracker.start("test", warmup_steps=0)

    def on_test_end(self, trainer, pl_module):
        self.tracker.end("test")

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0):
        for stage in self.tracker.open:
            if stage.name == "test":
                stage.add(self._counts(batch))


@contextmanager
def measure_stage(tracker: StageTracker, name: str, warmup_steps: int = 0):
    """Measure a stage outside Lightning (prepare, export). Yields the open stage; call
    ``stage.add({"rows": n})`` as work is done."""
    stage = tracker.start(name, warmup_steps=warmup_steps)
    try:
        yield stage
    finally:
        tracker.end(name)
