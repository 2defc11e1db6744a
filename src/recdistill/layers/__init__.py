"""Small ``nn`` building blocks shared by the models, each written by hand for a measured CPU speed-up:
a dropout that draws its mask with uniforms (:mod:`.dropout`), a LoRA input dropout that saves the
shared input and a byte mask (:mod:`.dropout_linear`) and a chunked, fused linear + cross-entropy
(:mod:`.fused_ce`)."""

from recdistill.layers.dropout import CPUFriendlyDropout, dropout_mask, make_dropout
from recdistill.layers.dropout_linear import dropout_linear
from recdistill.layers.fused_ce import linear_cross_entropy

__all__ = ["CPUFriendlyDropout", "dropout_linear", "dropout_mask", "linear_cross_entropy", "make_dropout"]
