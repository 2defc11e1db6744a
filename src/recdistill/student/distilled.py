"""Embedding distillation (DLLM2Rec's "collaborative embedding distillation").

Every item's embedding becomes ``e(i) = e_id(i) + gamma * MLP(e_llm(i))``: the student's own trained
embedding plus a trained projection of the teacher's (frozen) LLM embedding of that item. Every student
(``student/item_table.py``) reads item embeddings only through ``embed_items`` / ``all_item_embeddings`` /
``embed_inputs``, so :func:`distilled` makes any of them a distilled student: overriding those applies
the change to the input sequence and to the output scores alike, in training and at test time (the
LLM embeddings are a buffer saved with the checkpoint). That is ``tie=tied`` (ours).

``tie=untied`` is DLLM2Rec's code: the LLM part is added to the input embeddings only, and the scores
come from a separate output table (their ``s_fc``, a linear layer over the catalogue; ours has no bias,
because every scorer here is a dot product with an item table, the fused cross-entropy included).
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F
from torch import nn

from recdistill.errors import ConfigError
from recdistill.student.item_table import ItemTableRecommender
from recdistill.student.sasrec import SASRec

NORMALISATIONS = ("none", "standard")
TIES = ("tied", "untied")


def projection_mlp(in_dim: int, out_dim: int, layers: int, hidden: int) -> nn.Module:
    """``layers`` linear layers with GELU between them; ``layers=1`` is DLLM2Rec's single linear map."""
    if int(layers) < 1:
        raise ConfigError(f"distill.ed.mlp_layers={layers!r} is not valid; expected an integer >= 1")
    dims = [in_dim] + [int(hidden)] * (int(layers) - 1) + [out_dim]
    parts: list[nn.Module] = []
    for i in range(len(dims) - 1):
        parts.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            parts.append(nn.GELU())
    return nn.Sequential(*parts)


def normalise_embeddings(emb: torch.Tensor, how: str) -> torch.Tensor:
    """``standard``: centre each dimension over the items and divide by the overall standard deviation,
    so LLM hidden states (norms in the tens) enter the MLP at a scale its default initialisation
    expects; row 0 (padding) stays zero. ``none``: as exported (what DLLM2Rec does)."""
    if how not in NORMALISATIONS:
        raise ConfigError(f"distill.ed.normalize={how!r} is not valid; choose one of: {', '.join(NORMALISATIONS)}")
    emb = emb.float().clone()
    if how == "standard" and emb.shape[0] > 2:
        items = emb[1:]
        items = items - items.mean(0, keepdim=True)
        emb[1:] = items / items.std().clamp_min(1e-8)
    emb[0] = 0.0
    return emb


class DistilledItemTable:
    """Mixed in before a student class (:func:`distilled`): its item embeddings include the projected LLM
    embeddings.

    Args:
        llm_embeddings: ``[num_items + 1, D]`` from the teacher outputs, or ``None`` for the plain student.
        gamma: the weight of the LLM part (``ed.gamma``; 0 also gives the plain student).
        mlp_layers, mlp_hidden: the projection (see :func:`projection_mlp`).
        **model_kwargs: the student's own settings (``max_len``, ``hidden_size``, ...).
    """

    plain: type  # the student class this one distils (set by distilled())

    def __init__(self, num_items: int, llm_embeddings: torch.Tensor | None = None, gamma: float = 0.2,
                 mlp_layers: int = 1, mlp_hidden: int = 256, normalize: str = "standard", tie: str = "tied",
                 id_dropout: float = 0.0, **model_kwargs):
        if tie not in TIES:
            raise ConfigError(f"distill.ed.tie={tie!r} is not valid; choose one of: {', '.join(TIES)}")
        super().__init__(num_items, **model_kwargs)
        self.gamma = float(gamma)
        self.tie = tie
        if not 0.0 <= float(id_dropout) < 1.0:
            raise ConfigError(f"distill.ed.id_dropout={id_dropout!r} is not valid; expected a probability in [0, 1)")
        self.id_dropout = float(id_dropout)
        if tie == "untied":
            self.output_embedding = nn.Embedding(self.num_items + 1, self.hidden_size, padding_idx=0)
            nn.init.xavier_normal_(self.output_embedding.weight)
            with torch.no_grad():
                self.output_embedding.weight[0].zero_()
        self._shared_table: torch.Tensor | None = None
        self.uses_llm = llm_embeddings is not None and self.gamma != 0.0
        if self.uses_llm:
            if llm_embeddings.shape[0] != num_items + 1:
                raise ConfigError(
                    f"LLM item embeddings have {llm_embeddings.shape[0]} rows, the student has {num_items + 1} "
                    "item ids; the teacher outputs belong to another dataset"
                )
            self.register_buffer("llm_embeddings", normalise_embeddings(llm_embeddings, normalize))
            self.llm_projection = projection_mlp(llm_embeddings.shape[1], self.hidden_size, mlp_layers, mlp_hidden)

    def all_item_embeddings(self) -> torch.Tensor:
        if self.tie == "untied":
            return self.output_embedding.weight
        return self._input_table()

    def _input_table(self) -> torch.Tensor:
        base = self.item_embedding.weight
        if not self.uses_llm:
            return base
        if self._shared_table is not None:
            return self._shared_table
        if self.training and self.id_dropout > 0:
            # item-ID dropout (DropoutNet's idea, an option of ours, not DLLM2Rec's): some items are seen
            # through their LLM embedding alone in this step, as a new item always is, so the projection
            # learns to carry the collaborative signal and new items score on the same scale as known ones
            keep = (torch.rand(base.shape[0], 1, device=base.device) >= self.id_dropout).to(base.dtype)
            base = base * keep
        return base + self.gamma * self.llm_projection(self.llm_embeddings)

    @contextmanager
    def shared_item_table(self):
        """Inside the block the item table is projected once and reused by every read (a training step
        reads it for the input, the catalogue scores and the distillation scores); gradients still flow
        through the one projection."""
        self._shared_table = None
        self._shared_table = self._input_table() if self.uses_llm else None
        try:
            yield
        finally:
            self._shared_table = None

    def embed_items(self, ids: torch.Tensor) -> torch.Tensor:
        """Output-side embeddings (scores of chosen items)."""
        if self.tie == "untied":
            return self.output_embedding(ids)
        return self.embed_inputs(ids)

    def embed_inputs(self, ids: torch.Tensor) -> torch.Tensor:
        if not self.uses_llm:
            return self.item_embedding(ids)
        # project the whole table once (N x D) rather than every position of the batch (B x L x D)
        return F.embedding(ids, self._input_table())


_DISTILLED: dict[type, type] = {}


def distilled(student_class: type) -> type:
    """The distilled form of a student class (one class per student, made once): ``Distilled<Name>``."""
    if not issubclass(student_class, ItemTableRecommender):
        raise TypeError(f"{student_class.__name__} is not a student (an ItemTableRecommender)")
    if student_class not in _DISTILLED:
        _DISTILLED[student_class] = type(f"Distilled{student_class.__name__}", (DistilledItemTable, student_class),
                                         {"plain": student_class, "__module__": __name__})
    return _DISTILLED[student_class]


DistilledSASRec = distilled(SASRec)


def is_distilled(model) -> bool:
    return isinstance(model, DistilledItemTable)
