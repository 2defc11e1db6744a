"""GRU4Rec (Hidasi et al., 2016) as DLLM2Rec trains it: item embeddings through a GRU, the hidden state at each
position is the user. Scores are dot products with the item table (DLLM2Rec's code has a separate output
layer over the catalogue; every student here scores against its item table, so the fused full-catalogue
cross-entropy, embedding distillation and the exporter treat all students alike; docs/distillation.md).

Histories are left-padded, but a GRU must start from its zero state at the first real item, not after
a run of padding (its biases would move the state). The sequence is therefore shifted so the real items
come first, run through the GRU (padding at the end cannot reach earlier outputs), and shifted back; both
shifts are gathers, so the whole model exports to ONNX."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import nn

from recdistill.errors import ConfigError
from recdistill.layers.dropout import make_dropout
from recdistill.student.item_table import ItemTableRecommender
from recdistill.student.registry import StudentModel, register


def shift_rows(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Row ``b`` of ``x[B, L, H]`` rotated left by ``shift[b]`` positions (right for negative shifts)."""
    length = x.shape[1]
    index = (torch.arange(length, device=x.device).unsqueeze(0) + shift.unsqueeze(1)) % length
    return x.gather(1, index.unsqueeze(-1).expand(-1, -1, x.shape[2]))


class GRU4Rec(ItemTableRecommender):
    def __init__(self, num_items: int, max_len: int = 50, hidden_size: int = 64, num_layers: int = 1,
                 dropout: float = 0.1, uniform_dropout: bool = True):
        super().__init__(num_items, max_len, hidden_size)
        self.config = dict(num_items=self.num_items, max_len=self.max_len, hidden_size=self.hidden_size,
                           num_layers=int(num_layers), dropout=float(dropout))
        self.embedding_dropout = make_dropout(dropout, uniform_dropout)
        self.gru = nn.GRU(hidden_size, hidden_size, num_layers=int(num_layers), batch_first=True)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        # DLLM2Rec: item embeddings ~ N(0, 0.01); the GRU keeps torch's own initialisation
        nn.init.normal_(self.item_embedding.weight, 0.0, 0.01)
        with torch.no_grad():
            self.item_embedding.weight[0].zero_()

    def forward(self, seq: torch.Tensor) -> torch.Tensor:
        self.check_length(seq)
        real = seq > 0
        keep = real.unsqueeze(-1).to(self.item_embedding.weight.dtype)
        padding = seq.shape[1] - real.sum(1)
        x = self.embedding_dropout(self.embed_inputs(seq)) * keep
        out, _ = self.gru(shift_rows(x, padding))   # real items first, from the zero state
        return shift_rows(out, -padding) * keep     # back to left padding; padded positions zero


@dataclass(frozen=True)
class GRU4RecSettings:
    """GRU4Rec's own values of the ``student`` group (``config/conf/student/gru4rec.yaml`` holds their
    defaults)."""

    hidden_size: int
    num_layers: int
    dropout: float

    def __post_init__(self):
        check_count(self.hidden_size, "hidden_size")
        check_count(self.num_layers, "num_layers")
        check_dropout(self.dropout)

    @classmethod
    def from_dict(cls, values: dict) -> "GRU4RecSettings":
        return cls(**values)

    def to_dict(self) -> dict:
        return asdict(self)


def check_count(value, key: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"student.{key}={value!r} is not valid; expected a number > 0")


def check_dropout(value) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 0.99:
        raise ConfigError(f"student.dropout={value!r} is not valid; expected a number in [0.0, 0.99]")


register(StudentModel("gru4rec", GRU4Rec, GRU4RecSettings))
