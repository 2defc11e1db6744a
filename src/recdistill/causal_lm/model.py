"""A decoder-only transformer language model (GPT-2 shape), readable top to bottom.

    tokens -> token embedding + learned position embedding -> dropout
           -> n_layers x Block(LayerNorm -> causal self-attention -> +, LayerNorm -> MLP -> +)
           -> LayerNorm -> linear head tied to the token embedding -> logits

Pre-LayerNorm blocks, GELU MLP of width 4 x d_model, and the output head sharing its weight with the
token embedding, as in GPT-2. Attention uses PyTorch's ``scaled_dot_product_attention`` (which picks a
fused kernel: FlashAttention / memory-efficient on CUDA, a fused C++ kernel on CPUs) or, with
``attention="eager"``, the textbook softmax(QK^T / sqrt(d)) V with an explicit causal mask, kept for
comparison and as the baseline.

With ``uniform_dropout=True`` (the engine's ``efficiency.uniform_dropout``) every dropout on a CPU draws
its mask from uniforms (``recdistill.layers.dropout``; ``bernoulli_`` took 15 % of a ``tiny`` training
step here), and attention then takes the explicit softmax(QK^T)V path so that its weights' dropout does
too: ``scaled_dot_product_attention`` on a CPU runs that same math path whenever dropout is on, with its
own ``bernoulli_`` mask. On CUDA both settings use the fused kernels.

Gradient checkpointing is per block: with ``gradient_checkpointing=True`` each block's activations are
dropped after the forward pass and recomputed in the backward pass (less memory, about a third more
compute).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.checkpoint import checkpoint

from recdistill.errors import ConfigError
from recdistill.layers.dropout import make_dropout

ATTENTIONS = ("sdpa", "eager")


@dataclass(frozen=True)
class GPTConfig:
    vocab_size: int = 257
    context_length: int = 128   # the longest sequence the position table covers
    d_model: int = 128          # width of every token vector (the seed's "context-vector dimension")
    n_layers: int = 4
    n_heads: int = 4
    dropout: float = 0.0
    bias: bool = True           # biases in Linear and LayerNorm layers, as GPT-2
    attention: str = "sdpa"     # sdpa | eager
    gradient_checkpointing: bool = False
    uniform_dropout: bool = False  # CPU dropout masks from uniform draws (the engine turns this on)

    def __post_init__(self):
        for name in ("vocab_size", "context_length", "d_model", "n_layers", "n_heads"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise ConfigError(f"lm.{name}={value!r} is not valid; expected an integer > 0")
        if self.d_model % self.n_heads:
            raise ConfigError(
                f"lm.d_model={self.d_model} is not divisible by lm.n_heads={self.n_heads}; "
                "choose a head count that divides the model width"
            )
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"lm.dropout={self.dropout!r} is not valid; expected a number in [0, 1)")
        if self.attention not in ATTENTIONS:
            raise ConfigError(f"lm.attention={self.attention!r} is not valid; choose one of: {', '.join(ATTENTIONS)}")

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "GPTConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


# Shapes of the model sizes. small / medium / large are GPT-2's 117M / 345M / 774M shapes (their
# parameter counts assume GPT-2's 50,257-token vocabulary; with the byte-level tokenizer the embedding
# is smaller and so is the total).
PRESETS: dict[str, dict] = {
    "tiny": dict(d_model=128, n_layers=4, n_heads=4, context_length=128),
    "small": dict(d_model=768, n_layers=12, n_heads=12, context_length=1024),
    "medium": dict(d_model=1024, n_layers=24, n_heads=16, context_length=1024),
    "large": dict(d_model=1280, n_layers=36, n_heads=20, context_length=1024),
}


def preset_config(name: str, vocab_size: int, **overrides) -> GPTConfig:
    """A preset's shape with ``overrides`` (None values ignored) on top."""
    if name not in PRESETS:
        raise ConfigError(f"unknown lm.preset={name!r}; choose one of: {', '.join(PRESETS)}")
    values = dict(PRESETS[name])
    values.update({k: v for k, v in overrides.items() if v is not None})
    return GPTConfig(vocab_size=vocab_size, **values)


class CausalSelfAttention(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.n_heads = cfg.n_heads
        self.attention = cfg.attention
        self.dropout = cfg.dropout
        self.uniform_dropout = cfg.uniform_dropout
        self.qkv = nn.Linear(cfg.d_model, 3 * cfg.d_model, bias=cfg.bias)
        self.proj = nn.Linear(cfg.d_model, cfg.d_model, bias=cfg.bias)
        self.attn_dropout = make_dropout(cfg.dropout, cfg.uniform_dropout)
        self.resid_dropout = make_dropout(cfg.dropout, cfg.uniform_dropout)
        if cfg.attention == "eager" or cfg.uniform_dropout:
            # -inf where a query may not look (a later position), 0 elsewhere
            future = torch.full((cfg.context_length, cfg.context_length), float("-inf")).triu(diagonal=1)
            self.register_buffer("future_bias", future, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, T, C = x.shape
        q, k, v = self.qkv(x).split(C, dim=2)
        # [B, T, C] -> [B, heads, T, head_dim]
        q, k, v = (t.view(B, T, self.n_heads, C // self.n_heads).transpose(1, 2) for t in (q, k, v))
        p = self.dropout if self.training else 0.0
        explicit = self.attention == "eager" or (self.uniform_dropout and p > 0 and x.device.type == "cpu")
        if explicit:
            # scale the smaller operand; an additive -inf mask has no backward work (masked_fill has one)
            att = (q * (1.0 / math.sqrt(k.size(-1)))) @ k.transpose(-2, -1) + self.future_bias[:T, :T]
            att = self.attn_dropout(F.softmax(att, dim=-1))
            y = att @ v
        else:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=True)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.proj(y))


class MLP(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.fc = nn.Linear(cfg.d_model, 4 * cfg.d_model, bias=cfg.bias)
        self.proj = nn.Linear(4 * cfg.d_model, cfg.d_model, bias=cfg.bias)
        self.dropout = make_dropout(cfg.dropout, cfg.uniform_dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.proj(F.gelu(self.fc(x), approximate="tanh")))


class Block(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln_1 = nn.LayerNorm(cfg.d_model, bias=cfg.bias)
        self.attn = CausalSelfAttention(cfg)
        self.ln_2 = nn.LayerNorm(cfg.d_model, bias=cfg.bias)
        self.mlp = MLP(cfg)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))


class GPT(nn.Module):
    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.cfg = cfg
        self.gradient_checkpointing = cfg.gradient_checkpointing
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.d_model)
        self.pos_emb = nn.Embedding(cfg.context_length, cfg.d_model)
        self.drop = make_dropout(cfg.dropout, cfg.uniform_dropout)
        self.blocks = nn.ModuleList(Block(cfg) for _ in range(cfg.n_layers))
        self.ln_f = nn.LayerNorm(cfg.d_model, bias=cfg.bias)
        self.head = nn.Linear(cfg.d_model, cfg.vocab_size, bias=False)
        self.head.weight = self.tok_emb.weight  # weight tying (GPT-2)
        self.apply(self._init_weights)
        # GPT-2: scale the residual projections by 1/sqrt(2 * n_layers) so the residual stream's
        # variance does not grow with depth.
        for name, p in self.named_parameters():
            if name.endswith("proj.weight"):
                nn.init.normal_(p, mean=0.0, std=0.02 / math.sqrt(2 * cfg.n_layers))

    @staticmethod
    def _init_weights(module: nn.Module) -> None:
        if isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            nn.init.normal_(module.weight, mean=0.0, std=0.02)

    def num_parameters(self, exclude_positions: bool = False) -> int:
        n = sum(p.numel() for p in self.parameters())  # the tied head is counted once
        return n - self.pos_emb.weight.numel() if exclude_positions else n

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """``idx``: token ids [B, T] with T <= context_length. Returns logits [B, T, vocab]."""
        B, T = idx.shape
        if T > self.cfg.context_length:
            raise ValueError(f"sequence of {T} tokens is longer than the context length {self.cfg.context_length}")
        pos = torch.arange(T, device=idx.device)
        x = self.drop(self.tok_emb(idx) + self.pos_emb(pos))
        for block in self.blocks:
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(block, x, use_reentrant=False)
            else:
                x = block(x)
        return self.head(self.ln_f(x))

    def loss(self, idx: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean next-token cross-entropy (nats per token)."""
        logits = self(idx)
        return F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1))

    @torch.no_grad()
    def generate(self, idx: torch.Tensor, max_new_tokens: int, temperature: float = 1.0, top_k: int | None = None,
                 stop_token: int | None = None, generator: torch.Generator | None = None) -> torch.Tensor:
        """Sample ``max_new_tokens`` tokens after ``idx`` [1, T]. The window is cropped to the context
        length; ``temperature=0`` picks the most likely token."""
        for _ in range(max_new_tokens):
            window = idx[:, -self.cfg.context_length:]
            logits = self(window)[:, -1, :]
            if temperature <= 0:
                nxt = logits.argmax(dim=-1, keepdim=True)
            else:
                logits = logits / temperature
                if top_k:
                    kth = torch.topk(logits, min(top_k, logits.size(-1))).values[:, [-1]]
                    logits = logits.masked_fill(logits < kth, float("-inf"))
                nxt = torch.multinomial(F.softmax(logits, dim=-1), 1, generator=generator)
            idx = torch.cat([idx, nxt], dim=1)
            if stop_token is not None and int(nxt) == stop_token:
                break
        return idx
