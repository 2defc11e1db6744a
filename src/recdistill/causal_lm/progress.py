"""Progress while training (``progress.json``, rewritten every few steps) and the training-curve PNG at
the end. The JSON is written atomically, so a reader (a notebook, ``watch cat``) never sees half a file."""

from __future__ import annotations

import io
import math
import time
from pathlib import Path

import lightning as L

from recdistill.engine.rundir import atomic_write_bytes, atomic_write_json


def _metric(trainer, key: str):
    value = trainer.callback_metrics.get(key)
    return None if value is None else float(value)


def _ppl(loss):
    return None if loss is None else math.exp(min(loss, 50.0))


class ProgressJSON(L.Callback):
    """Writes ``<run>/progress.json``: step, max_steps, epoch, train and validation loss and perplexity,
    the best validation loss so far, tokens per second since the previous write, elapsed seconds, ETA,
    and the loss history that the curve PNG is drawn from."""

    def __init__(self, path: str | Path, every_steps: int = 10, run_name: str = "", tokens_fn=None):
        self.path = Path(path)
        self.every = max(1, int(every_steps))
        self.run_name = run_name
        self.tokens_fn = tokens_fn
        self.train_history: list[tuple[int, float]] = []
        self.val_history: list[tuple[int, float]] = []
        self.best: tuple[int, float] | None = None
        self.tokens = 0
        self._last_written_step = -1
        self.rate: float | None = None

    def state_dict(self) -> dict:
        """Kept in checkpoints, so a resumed run's history, token count and best step continue."""
        return {"train_history": self.train_history, "val_history": self.val_history, "best": self.best,
                "tokens": self.tokens}

    def load_state_dict(self, state: dict) -> None:
        self.train_history = [tuple(x) for x in state["train_history"]]
        self.val_history = [tuple(x) for x in state["val_history"]]
        self.best = tuple(state["best"]) if state["best"] is not None else None
        self.tokens = int(state["tokens"])

    def on_fit_start(self, trainer, pl_module):
        self.start = self._mark_time = time.perf_counter()
        self._mark_tokens = self.tokens
        self._mark_step = trainer.global_step
        self.first_step = trainer.global_step
        self._write(trainer, "training")

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        if self.tokens_fn is not None:
            self.tokens += self.tokens_fn(batch)
        step = trainer.global_step
        loss = _metric(trainer, "train/loss")
        if loss is not None and (not self.train_history or self.train_history[-1][0] != step):
            self.train_history.append((step, loss))
        if step % self.every == 0 and step != self._last_written_step:
            self._write(trainer, "training")

    def on_validation_end(self, trainer, pl_module):
        if trainer.sanity_checking:
            return
        loss = _metric(trainer, "val/loss")
        if loss is None:
            return
        step = trainer.global_step
        self.val_history.append((step, loss))
        if self.best is None or loss < self.best[1]:
            self.best = (step, loss)
        self._write(trainer, "training")

    def on_fit_end(self, trainer, pl_module):
        self._write(trainer, "finished")

    def _write(self, trainer, status: str) -> None:
        now = time.perf_counter()
        step = trainer.global_step
        self._last_written_step = step
        span = now - self._mark_time
        if span > 0 and self.tokens > self._mark_tokens:  # else keep the previous rate
            self.rate = (self.tokens - self._mark_tokens) / span
            self._mark_time, self._mark_tokens = now, self.tokens
        rate = self.rate
        elapsed = now - self.start
        done = step - self.first_step
        max_steps = trainer.max_steps if trainer.max_steps and trainer.max_steps > 0 else None
        eta = (max_steps - step) * elapsed / done if max_steps and done > 0 else None
        train_loss = self.train_history[-1][1] if self.train_history else None
        val_loss = self.val_history[-1][1] if self.val_history else None
        atomic_write_json(self.path, {
            "run": self.run_name,
            "status": status,
            "step": step,
            "max_steps": max_steps,
            "epoch": trainer.current_epoch,
            "train_loss": train_loss,
            "train_ppl": _ppl(train_loss),
            "val_loss": val_loss,
            "val_ppl": _ppl(val_loss),
            "best_val_loss": self.best[1] if self.best else None,
            "best_val_ppl": _ppl(self.best[1]) if self.best else None,
            "best_step": self.best[0] if self.best else None,
            "tokens_seen": self.tokens,
            "tokens_per_second": round(rate, 1) if rate else None,
            "elapsed_seconds": round(elapsed, 2),
            "eta_seconds": round(eta, 1) if eta is not None else None,
            "history": {"train": self.train_history, "val": self.val_history},
        })


def plot_curves(train: list, val: list, path: str | Path, title: str = "") -> Path:
    """Train and validation loss against optimizer step, with validation perplexity on the right axis."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    if train:
        ax.plot([s for s, _ in train], [v for _, v in train], label="train loss", color="tab:blue", alpha=0.7)
    if val:
        ax.plot([s for s, _ in val], [v for _, v in val], "o-", label="validation loss", color="tab:orange")
        right = ax.twinx()
        right.set_ylim(*(math.exp(min(y, 50.0)) for y in ax.get_ylim()))
        right.set_yscale("log")
        right.set_ylabel("validation perplexity (log scale)")
    ax.set_xlabel("optimizer step")
    ax.set_ylabel("cross-entropy (nats / token)")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(loc="upper right")
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    return atomic_write_bytes(path, buf.getvalue())
