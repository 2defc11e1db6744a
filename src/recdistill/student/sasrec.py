"""SASRec (Kang & McAuley, 2018): self-attentive sequential recommendation, as a plain ``nn.Module``.

Inputs are item ids **left-padded** with 0, so index -1 is always the newest item. Position embeddings
are counted from the right (the newest item always gets position ``max_len - 1``), so a history gives
the same outputs whether it is padded to 20 or to 50. Attention is causal and never looks at padding;
the outputs at padded positions are zero.

The item embedding table is shared by the input and the output layer (as in the original code); every
read of it goes through :meth:`SASRec.embed_items` or :meth:`SASRec.all_item_embeddings`, so a subclass
(distillation) can change what an item's embedding is in one place.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from recdistill.errors import ConfigError
from recdistill.layers.dropout import make_dropout
from recdistill.student.item_table import ItemTableRecommender
from recdistill.student.registry import StudentModel, register


class CausalSelfAttention(nn.Module):
    def __init__(self, hidden_size: int, num_heads: int, dropout: float):
        super().__init__()
        self.num_heads = num_heads
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size)
        self.out = nn.Linear(hidden_size, hidden_size)
        self.dropout = dropout

    def forward(self, x: torch.Tensor, allowed: torch.Tensor) -> torch.Tensor:
        batch, length, hidden = x.shape
        q, k, v = self.qkv(x).view(batch, length, 3, self.num_heads, hidden // self.num_heads).permute(2, 0, 3, 1, 4)
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=allowed,
                                           dropout_p=self.dropout if self.training else 0.0)
        return self.out(y.transpose(1, 2).reshape(batch, length, hidden))


class SASRecBlock(nn.Module):
    """Self-attention then a position-wise feed-forward layer (inner size = hidden size, as in SASRec),
    each with a residual connection; layer norm before (pre-LN) or after (post-LN) each part."""

    def __init__(self, hidden_size: int, num_heads: int, dropout: float, norm_first: bool,
                 uniform_dropout: bool = True):
        super().__init__()
        self.norm_first = norm_first
        self.attn = CausalSelfAttention(hidden_size, num_heads, dropout)
        self.ffn = nn.Sequential(nn.Linear(hidden_size, hidden_size), nn.GELU(), make_dropout(dropout, uniform_dropout),
                                 nn.Linear(hidden_size, hidden_size))
        self.norm1 = nn.LayerNorm(hidden_size)
        self.norm2 = nn.LayerNorm(hidden_size)
        self.drop = make_dropout(dropout, uniform_dropout)

    def forward(self, x: torch.Tensor, allowed: torch.Tensor, keep: torch.Tensor) -> torch.Tensor:
        if self.norm_first:
            x = x + self.drop(self.attn(self.norm1(x), allowed))
            x = x + self.drop(self.ffn(self.norm2(x)))
        else:
            x = self.norm1(x + self.drop(self.attn(x, allowed)))
            x = self.norm2(x + self.drop(self.ffn(x)))
        return x * keep  # padded positions stay exactly zero


class SASRec(ItemTableRecommender):
    def __init__(self, num_items: int, max_len: int = 50, hidden_size: int = 64, num_blocks: int = 2,
                 num_heads: int = 1, dropout: float = 0.2, norm_first: bool = True, uniform_dropout: bool = True):
        if hidden_size % num_heads:
            raise ValueError(f"hidden_size={hidden_size} must be divisible by num_heads={num_heads}")
        super().__init__(num_items, max_len, hidden_size)   # the item table, first, as before the base existed
        self.config = dict(num_items=self.num_items, max_len=self.max_len, hidden_size=self.hidden_size,
                           num_blocks=int(num_blocks), num_heads=int(num_heads), dropout=float(dropout),
                           norm_first=bool(norm_first))
        self.position_embedding = nn.Embedding(self.max_len, hidden_size)
        # uniform_dropout (efficiency.uniform_dropout) picks the dropout layer, not the model: it is left out of
        # self.config, so checkpoints and export identities do not depend on it
        self.embedding_dropout = make_dropout(dropout, uniform_dropout)
        self.blocks = nn.ModuleList(SASRecBlock(hidden_size, num_heads, dropout, norm_first, uniform_dropout)
                                    for _ in range(num_blocks))
        # Pre-LN stacks need a final norm (the residual stream is never normalised otherwise).
        self.final_norm = nn.LayerNorm(hidden_size) if norm_first else nn.Identity()
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for name, param in self.named_parameters():
            if param.dim() >= 2:
                nn.init.xavier_normal_(param)
            elif name.endswith("bias"):
                nn.init.zeros_(param)
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()

    # -- encoder ------------------------------------------------------------------------------------
    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        """Same as :meth:`encode`; ``forward`` exists so ``nn.Module.compile()`` compiles the encoder."""
        self.check_length(seq)
        length = seq.shape[1]
        real = seq > 0
        keep = real.unsqueeze(-1).to(self.item_embedding.weight.dtype)
        positions = torch.arange(self.max_len - length, self.max_len, device=seq.device)
        x = self.embed_inputs(seq) * math.sqrt(self.hidden_size) + self.position_embedding(positions)
        x = self.embedding_dropout(x) * keep
        # allowed[b, 1, i, j]: query i may attend to key j (j <= i, j not padding). Every position may
        # attend to itself, so the softmax of a padded row is defined (its output is zeroed anyway).
        causal = torch.ones(length, length, dtype=torch.bool, device=seq.device).tril()
        eye = torch.eye(length, device=seq.device).bool()  # float EyeLike: ONNX Runtime has no bool kernel
        allowed = ((causal & real[:, None, :]) | eye).unsqueeze(1)
        for block in self.blocks:
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, allowed, keep, use_reentrant=False)
            else:
                x = block(x, allowed, keep)
        return self.final_norm(x) * keep


@dataclass(frozen=True)
class SASRecSettings:
    """SASRec's own values of the ``student`` group (``config/conf/student/sasrec.yaml``, which holds their
    defaults); checked here, so every caller gets the same errors, named by their config keys."""

    hidden_size: int
    num_blocks: int
    num_heads: int
    dropout: float
    norm_first: bool

    def __post_init__(self):
        for key in ("hidden_size", "num_blocks", "num_heads"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ConfigError(f"student.{key}={value!r} is not valid; expected a number > 0")
        if isinstance(self.dropout, bool) or not isinstance(self.dropout, (int, float)) or not 0.0 <= self.dropout <= 0.99:
            raise ConfigError(f"student.dropout={self.dropout!r} is not valid; expected a number in [0.0, 0.99]")
        if self.hidden_size % self.num_heads:
            raise ConfigError(f"student.hidden_size={self.hidden_size} must be divisible by "
                              f"student.num_heads={self.num_heads}")

    @classmethod
    def from_dict(cls, values: dict) -> "SASRecSettings":
        return cls(**values)

    def to_dict(self) -> dict:
        return asdict(self)


register(StudentModel("sasrec", SASRec, SASRecSettings))
