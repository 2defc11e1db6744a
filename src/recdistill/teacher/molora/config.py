"""Settings of the mixture-of-LoRA experts."""

from __future__ import annotations

from dataclasses import asdict, dataclass

from recdistill.errors import ConfigError

# How the update is scaled: ilora = alpha / (r / K), each expert scaled by its own rank, as iLoRA's code does
# (32 / 2 = 16 at r=8, K=4); standard = alpha / r, LoRA's rule over the total rank (4 there, a 4x smaller update).
SCALING_RULES = ("ilora", "standard")


@dataclass
class MoLoRAConfig:
    """``teacher.lora`` (its defaults: ``config/conf/teacher/ilora.yaml``; read by
    ``recipes.teacher_settings.teacher_spec``), checked here once. ``r`` is the total rank, split evenly into
    ``num_experts`` experts of rank ``r / num_experts``. ``scaling_rule`` picks the update's scale
    (SCALING_RULES); with one expert both rules give ``alpha / r``."""

    r: int
    num_experts: int
    alpha: float
    dropout: float
    target_modules: tuple[str, ...]
    scaling_rule: str
    top_layers: int | None            # adapters only in the top N decoder layers (None: every layer)

    def __post_init__(self):
        self.r, self.num_experts = int(self.r), int(self.num_experts)
        self.alpha, self.dropout = float(self.alpha), float(self.dropout)
        self.target_modules = tuple(str(t) for t in self.target_modules)
        if self.r < 1 or self.num_experts < 1 or self.r % self.num_experts:
            raise ConfigError(f"teacher.lora.r={self.r} must be a positive multiple of "
                              f"teacher.lora.num_experts={self.num_experts} (each expert gets r / K ranks)")
        if not self.alpha > 0:
            raise ConfigError(f"teacher.lora.alpha={self.alpha} is not valid; expected a number > 0")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"teacher.lora.dropout={self.dropout} must be in [0, 1)")
        if self.top_layers is not None:
            self.top_layers = int(self.top_layers)
            if self.top_layers < 1:
                raise ConfigError(f"teacher.lora.top_layers={self.top_layers} must be >= 1 (or null for every layer)")
        self.scaling_rule = str(self.scaling_rule)
        if self.scaling_rule not in SCALING_RULES:
            raise ConfigError(f"teacher.lora.scaling={self.scaling_rule!r} is not valid; choose one of: "
                              f"{', '.join(SCALING_RULES)}")
        if not self.target_modules:
            raise ConfigError("teacher.lora.target_modules is empty; name at least one linear layer (e.g. q_proj)")

    @property
    def expert_rank(self) -> int:
        return self.r // self.num_experts

    @property
    def scaling(self) -> float:
        if self.scaling_rule == "ilora":
            return self.alpha / self.expert_rank
        return self.alpha / self.r

    def to_dict(self) -> dict:
        out = asdict(self)
        out["target_modules"] = list(self.target_modules)
        return out
