"""Settings of the mixture-of-LoRA experts."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from recdistill.errors import ConfigError

DEFAULT_TARGETS = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass
class MoLoRAConfig:
    """``r`` is the total rank, split evenly into ``num_experts`` experts of rank ``r / num_experts``
    (iLoRA: r=8, K=4, alpha=32, dropout 0.1). The update is scaled by ``alpha / r`` as in LoRA."""

    r: int = 8
    num_experts: int = 4
    alpha: float = 32.0
    dropout: float = 0.1
    target_modules: tuple[str, ...] = field(default=DEFAULT_TARGETS)

    def __post_init__(self):
        self.r, self.num_experts = int(self.r), int(self.num_experts)
        self.alpha, self.dropout = float(self.alpha), float(self.dropout)
        self.target_modules = tuple(str(t) for t in self.target_modules)
        if self.r < 1 or self.num_experts < 1 or self.r % self.num_experts:
            raise ConfigError(f"teacher.lora.r={self.r} must be a positive multiple of "
                              f"teacher.num_experts={self.num_experts} (each expert gets r / K ranks)")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"teacher.lora.dropout={self.dropout} must be in [0, 1)")
        if not self.target_modules:
            raise ConfigError("teacher.lora.target_modules is empty; name at least one linear layer (e.g. q_proj)")

    @property
    def expert_rank(self) -> int:
        return self.r // self.num_experts

    @property
    def scaling(self) -> float:
        return self.alpha / self.r

    def to_dict(self) -> dict:
        out = asdict(self)
        out["target_modules"] = list(self.target_modules)
        return out
