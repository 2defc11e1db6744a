"""Progress that works in a log file as well as a terminal.

On a terminal, tqdm bars (Lightning's, without its ``v_num`` field). When stdout is not a terminal (a log
file, CI, ``nohup``), a bar's carriage returns make one unreadable line, and a bar that moves once per
4-minute batch says nothing for 4 minutes; there :class:`LineProgress` prints one line every
``every`` seconds from a timer thread (so a single long batch still shows it is alive), with the count,
the rate and the ETA. :class:`LogProgress` does that for Lightning's training, validation and test loops;
:class:`LogIntervalByLength` picks how often metrics are logged from the run's length, so a 10-step run
has 10 points on its loss curve and a 10,000-step run does not write every step.
"""

from __future__ import annotations

import io
import sys
import threading
import time
from typing import TextIO

import lightning as L
from lightning.pytorch.callbacks import TQDMProgressBar
from tqdm.auto import tqdm

PROGRESS_EVERY_SECONDS = 30.0


def stdout_is_terminal() -> bool:
    return sys.stdout.isatty()


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    minutes, seconds = divmod(seconds, 60)
    if minutes < 60:
        return f"{minutes}m{seconds:02d}s"
    return f"{minutes // 60}h{minutes % 60:02d}m"


class LineProgress:
    """A progress report of one line every ``every`` seconds, and one at the end."""

    def __init__(self, total: int | None, desc: str, unit: str = "it", every: float = PROGRESS_EVERY_SECONDS,
                 initial: int = 0, stream=None):
        self.total, self.desc, self.unit, self.every = total, desc, unit, float(every)
        self.start_count = self.count = int(initial)
        self.stream = stream or sys.stdout
        self.started = time.perf_counter()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._beat, daemon=True)
        self._thread.start()

    def line(self) -> str:
        elapsed = time.perf_counter() - self.started
        done = self.count - self.start_count
        rate = done / elapsed if elapsed > 0 else 0.0
        total = f"/{self.total}" if self.total else ""
        text = f"[{self.desc}] {self.count}{total} {self.unit}, {_duration(elapsed)} elapsed"
        if done:
            text += f", {rate:.3g} {self.unit}/s"
            if self.total:
                text += f", ETA {_duration(max(self.total - self.count, 0) / rate)}"
        else:
            text += ", first one still running"
        return text

    def _print(self, text: str) -> None:
        with self._lock:
            print(text, file=self.stream, flush=True)

    def _beat(self) -> None:
        while not self._stop.wait(self.every):
            self._print(self.line())

    def update(self, n: int = 1) -> None:
        self.count += int(n)

    def close(self) -> None:
        if not self._stop.is_set():
            self._stop.set()
            self._print(self.line().replace(" elapsed", "").replace(", ETA 0s", "") + " (done)")

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


def progress(total: int | None, desc: str, unit: str = "it", enabled: bool = True, initial: int = 0):
    """A tqdm bar on a terminal, :class:`LineProgress` in a log, a disabled tqdm when ``enabled`` is false."""
    if enabled and not stdout_is_terminal():
        return LineProgress(total, desc, unit, initial=initial)
    return tqdm(total=total, initial=initial, desc=desc, unit=unit, disable=not enabled, dynamic_ncols=True)


class QuietProgressBar(TQDMProgressBar):
    """Lightning's bar without ``v_num`` (the logger's version, "oard" for ours: noise)."""

    def get_metrics(self, trainer, pl_module):
        items = super().get_metrics(trainer, pl_module)
        items.pop("v_num", None)
        return items


class LogProgress(L.Callback):
    """Lightning loops reported with :class:`LineProgress` (for logs)."""

    def __init__(self, every: float = PROGRESS_EVERY_SECONDS):
        self.every = every
        self.bar: LineProgress | None = None

    def _open(self, total, desc: str) -> None:
        self._close()
        total = int(total) if isinstance(total, (int, float)) and total != float("inf") else None
        self.bar = LineProgress(total, desc, "batches", self.every)

    def _close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def _tick(self, *args, **kwargs) -> None:
        if self.bar is not None:
            self.bar.update(1)

    def on_train_epoch_start(self, trainer, pl_module):
        limit = f"/{trainer.max_epochs}" if trainer.max_epochs and trainer.max_epochs > 0 else ""
        self._open(trainer.num_training_batches, f"epoch {trainer.current_epoch + 1}{limit}")

    def on_validation_epoch_start(self, trainer, pl_module):
        if not trainer.sanity_checking:  # validation runs after the epoch's last batch: the epoch line closes
            self._open(sum(trainer.num_val_batches), "validation")

    def on_test_epoch_start(self, trainer, pl_module):
        self._open(sum(trainer.num_test_batches), "test")

    on_train_batch_end = on_validation_batch_end = on_test_batch_end = _tick

    def on_validation_epoch_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self._close()

    def on_train_epoch_end(self, trainer, pl_module):
        self._close()

    def on_test_epoch_end(self, trainer, pl_module):
        self._close()

    def teardown(self, trainer, pl_module, stage):
        self._close()


def log_interval(total_steps: int | float, points: int = 100, most: int = 50) -> int:
    """Steps between metric logs: about ``points`` over the planned run, every step in short runs, at most
    every ``most`` steps."""
    if not total_steps or total_steps == float("inf"):
        return most
    return int(min(most, max(1, int(total_steps) // points)))


class LogIntervalByLength(L.Callback):
    """Sets ``trainer.log_every_n_steps`` at the start of training from the planned number of steps."""

    def on_train_start(self, trainer, pl_module):
        per_epoch = trainer.num_training_batches
        epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else 1
        total = per_epoch * epochs if per_epoch != float("inf") else float("inf")
        if trainer.max_steps and trainer.max_steps > 0:
            total = min(total, trainer.max_steps)
        trainer.log_every_n_steps = log_interval(total)


# --- progress of a long read (the data readers): a plain line at a steady interval in a log
class ReadProgress:
    """Reports ``done`` of ``total`` bytes of ``label`` every ``interval_s`` seconds."""

    def __init__(self, label: str, total: int, interval_s: float = 5.0, stream: TextIO | None = None):
        self.label, self.total, self.interval_s = label, max(int(total), 1), float(interval_s)
        self.stream = stream if stream is not None else sys.stderr
        self.terminal = bool(getattr(self.stream, "isatty", lambda: False)())
        self.start = self.last = time.monotonic()
        self.reported = False

    def update(self, done: int) -> None:
        now = time.monotonic()
        if now - self.last < self.interval_s:
            return
        self.last, self.reported = now, True
        elapsed = now - self.start
        line = (f"reading {self.label}: {100 * done / self.total:5.1f}% ({done / 1e6:,.0f} of "
                f"{self.total / 1e6:,.0f} MB, {done / 1e6 / max(elapsed, 1e-9):,.0f} MB/s)")
        self.stream.write(("\r" + line) if self.terminal else (line + "\n"))
        self.stream.flush()

    def close(self) -> None:
        if self.reported and self.terminal:
            self.stream.write("\n")
            self.stream.flush()


class ProgressStream(io.RawIOBase):
    """A read-only stream over ``data`` that reports how far the reader (pyarrow) has got."""

    def __init__(self, data: bytes, progress: ReadProgress):
        self.view, self.position, self.progress = memoryview(data), 0, progress

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        chunk = self.view[self.position:self.position + len(buffer)]
        buffer[:len(chunk)] = chunk
        self.position += len(chunk)
        self.progress.update(self.position)
        return len(chunk)
