"""Small ``nn`` building blocks shared by the models, each written by hand for a measured CPU speed-up:
a dropout that draws its mask with uniforms (:mod:`.dropout`) and a chunked, fused linear + cross-entropy
(:mod:`.fused_ce`)."""

from recdistill.layers.dropout import CPUFriendlyDropout
from recdistill.layers.fused_ce import linear_cross_entropy

__all__ = ["CPUFriendlyDropout", "linear_cross_entropy"]
