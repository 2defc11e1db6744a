"""What every student shares: one item table, read only through ``embed_items`` / ``all_item_embeddings``,
and dot-product scores against it.

A student is a :class:`ItemTableRecommender` whose ``forward(seq[B, L]) -> hidden[B, L, H]`` reads left-padded
item ids (0 is padding, index -1 the newest item) and is causal: ``hidden[:, p]`` depends on ``seq[:, :p + 1]``
only, and padded positions come out as zeros. That one contract lets the same LightningModule train every
student on every position, the same exporter write it to ONNX, and distillation change what an item's
embedding is in one place (``student/distilled.py``).
"""

from __future__ import annotations

import torch
from torch import nn


class ItemTableRecommender(nn.Module):
    """Base of the students: the item table and the scoring. Subclasses build their encoder and set
    ``self.config`` (the constructor's arguments, what a checkpoint and an export record)."""

    def __init__(self, num_items: int, max_len: int, hidden_size: int):
        super().__init__()
        self.num_items = int(num_items)
        self.max_len = int(max_len)
        self.hidden_size = int(hidden_size)
        self.item_embedding = nn.Embedding(self.num_items + 1, self.hidden_size, padding_idx=0)
        self.gradient_checkpointing = False  # only students with stacked blocks use it

    # -- item embeddings: the only ways a student reads them ------------------------------------------
    def embed_items(self, ids: torch.Tensor) -> torch.Tensor:
        return self.item_embedding(ids)

    def all_item_embeddings(self) -> torch.Tensor:
        """``[num_items + 1, hidden]``; row 0 is padding."""
        return self.item_embedding.weight

    def embed_inputs(self, ids: torch.Tensor) -> torch.Tensor:
        """The input sequence's embeddings: the same table as the outputs (tied) unless a subclass unties
        them (the distilled student's ``distill.ed.tie=untied``). Row 0 need not be zero in a distilled
        table, so each student zeroes padded positions itself."""
        return self.embed_items(ids)

    # -- encoder and scores ---------------------------------------------------------------------------
    def check_length(self, seq: torch.Tensor) -> None:
        if seq.shape[1] > self.max_len:
            raise ValueError(f"sequence length {seq.shape[1]} exceeds max_len={self.max_len}; "
                             f"keep the last {self.max_len} items")

    def encode(self, seq: torch.Tensor) -> torch.Tensor:
        """``seq[B, L]`` (left-padded item ids, ``L <= max_len``) -> ``hidden[B, L, H]``."""
        return self(seq)

    def user_representation(self, seq: torch.Tensor) -> torch.Tensor:
        """The hidden state at the newest item: ``[B, H]``."""
        return self(seq)[:, -1, :]

    def score_all(self, hidden: torch.Tensor) -> torch.Tensor:
        """Dot-product scores of ``hidden[..., H]`` against every item id 0..N; id 0 gets ``-inf``."""
        logits = hidden @ self.all_item_embeddings().t()
        logits[..., 0] = float("-inf")
        return logits

    def score_items(self, hidden: torch.Tensor, ids: torch.Tensor) -> torch.Tensor:
        """Scores of chosen items: ``hidden[..., H]`` against ``ids[..., K]`` -> ``[..., K]``."""
        return (hidden.unsqueeze(-2) * self.embed_items(ids)).sum(-1)
