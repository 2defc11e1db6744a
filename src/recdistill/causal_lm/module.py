"""The LightningModule (loss, validation perplexity, optimizer from the engine) and the DataModule
(windows from the memory-mapped token files)."""

from __future__ import annotations

import math

import lightning as L
import torch
from torch.utils.data import DataLoader
from torchdata.stateful_dataloader import StatefulDataLoader

from recdistill.engine import Efficiency, OptimizerSettings, configure_optimizers, dataloader_kwargs, resolve_accelerator
from recdistill.causal_lm.model import GPT, GPTConfig
from recdistill.causal_lm.tokens import TokenFile, TokenWindows


class LMModule(L.LightningModule):
    """Next-token cross-entropy on windows; ``val/loss`` is averaged over tokens and ``val/ppl`` is its
    exponential. ``compile=True`` runs the forward pass through ``torch.compile`` while the state dict
    keeps the plain model's keys."""

    def __init__(self, model_config: dict, optim: OptimizerSettings | None = None, eff_cfg: Efficiency | None = None,
                 meta: dict | None = None, compile: bool = False):
        super().__init__()
        # Saved into every checkpoint so `lm eval` / `lm generate` can rebuild the model from the file alone.
        self.save_hyperparameters({"model_config": model_config, "meta": meta or {}})
        self.model = GPT(GPTConfig.from_dict(model_config))
        self.optim, self.eff_cfg = optim, eff_cfg
        # Kept in a tuple so the compiled wrapper is not registered as a submodule (its state-dict keys
        # would gain an "_orig_mod." prefix).
        self._forward = (torch.compile(self.model),) if compile else (self.model,)
        self._val_sum = 0.0
        self._val_tokens = 0

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        return self._forward[0](idx)

    def _loss(self, batch) -> torch.Tensor:
        x, y = batch
        logits = self(x)
        return torch.nn.functional.cross_entropy(logits.view(-1, logits.size(-1)).float(), y.reshape(-1))

    def training_step(self, batch, batch_idx):
        loss = self._loss(batch)
        self.log("train/loss", loss, prog_bar=True, on_step=True, on_epoch=False)
        return loss

    def on_validation_epoch_start(self):
        self._val_sum, self._val_tokens = 0.0, 0

    def validation_step(self, batch, batch_idx):
        loss = self._loss(batch)
        n = batch[1].numel()
        self._val_sum = self._val_sum + loss.detach() * n   # a tensor: no device sync per batch
        self._val_tokens += n

    def on_validation_epoch_end(self):
        loss = float(self._val_sum) / max(1, self._val_tokens)
        self.log("val/loss", loss, prog_bar=True)
        self.log("val/ppl", math.exp(min(loss, 50.0)))

    def configure_optimizers(self):
        return configure_optimizers(self, self.optim, self.eff_cfg, model=self.model)


class LMDataModule(L.LightningDataModule):
    def __init__(self, tokens: TokenFile, context: int, batch_size: int, eval_batch_size: int,
                 eff_cfg: Efficiency, train_stride: int | None = None):
        super().__init__()
        self.tokens, self.context = tokens, context
        self.batch_size, self.eval_batch_size = batch_size, eval_batch_size
        self.eff_cfg, self.train_stride = eff_cfg, train_stride
        # Built here, not in setup(), so a context longer than either split fails before training starts.
        self.train_set = TokenWindows(tokens.train, context, train_stride, split="train")
        self.val_set = TokenWindows(tokens.val, context, context, split="val")

    def _kwargs(self, shuffle: bool) -> dict:
        return dataloader_kwargs(self.eff_cfg, resolve_accelerator(self.eff_cfg.accelerator), shuffle=shuffle)

    def train_dataloader(self):
        # Full batches only (steady step time), unless the split is smaller than one batch. Checkpoints fall
        # mid-epoch (every train.val_every_steps), so the loader keeps its position for a resumed run.
        drop_last = len(self.train_set) >= self.batch_size
        # Its own generator: creating an iterator then draws nothing from the global one, which dropout uses,
        # so a resumed run's dropout masks continue exactly where the interrupted run's stopped.
        generator = torch.Generator().manual_seed(int(self.eff_cfg.seed))
        return StatefulDataLoader(self.train_set, batch_size=self.batch_size, drop_last=drop_last, generator=generator,
                                  **self._kwargs(True))

    def val_dataloader(self):
        return DataLoader(self.val_set, batch_size=self.eval_batch_size, **self._kwargs(False))


def tokens_in_batch(batch) -> int:
    """Tokens the model predicts in a batch (for StageMeter's unit "tokens")."""
    return int(batch[1].numel())
