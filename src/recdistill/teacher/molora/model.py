"""Put :class:`MoLoRALinear` layers into a model in place of its chosen linear layers."""

from __future__ import annotations

import re

from torch import nn

from recdistill.errors import ConfigError
from recdistill.teacher.molora.config import MoLoRAConfig
from recdistill.teacher.molora.layer import GateState, MoLoRALinear


def _matches(name: str, targets: tuple[str, ...]) -> bool:
    return name.rsplit(".", 1)[-1] in targets


LAYER_INDEX = re.compile(r"\.layers\.(\d+)\.")


def top_layer_indices(names: list[str], top_layers: int) -> set[int]:
    """The indices of the top ``top_layers`` decoder layers among module names like ``model.layers.12.mlp``."""
    indices = sorted({int(m.group(1)) for m in map(LAYER_INDEX.search, names) if m})
    if not indices:
        raise ConfigError("teacher.lora.top_layers needs a model whose decoder layers are named '<...>.layers.<i>.'; "
                          "this one has none; use teacher.lora.top_layers=null")
    if top_layers > len(indices):
        raise ConfigError(f"teacher.lora.top_layers={top_layers} exceeds the model's {len(indices)} decoder layers")
    return set(indices[-top_layers:])


def in_top_layers(name: str, keep: set[int]) -> bool:
    m = LAYER_INDEX.search(name)
    return m is not None and int(m.group(1)) in keep


def inject_molora(model: nn.Module, config: MoLoRAConfig, gate: GateState, uniform_dropout: bool = True) -> list[str]:
    """Wrap every ``nn.Linear`` whose last name part is in ``config.target_modules`` (in the top
    ``config.top_layers`` decoder layers only, when set). Base weights are frozen; only the new ``lora_A`` /
    ``lora_B`` train. Returns the wrapped module names."""
    found = [(name, module) for name, module in model.named_modules()
             if _matches(name, config.target_modules) and isinstance(module, nn.Linear)]
    if found and config.top_layers is not None:
        keep = top_layer_indices([name for name, _ in found], config.top_layers)
        found = [(name, module) for name, module in found if in_top_layers(name, keep)]
    if not found:
        linear = sorted({n.rsplit(".", 1)[-1] for n, m in model.named_modules() if isinstance(m, nn.Linear)})
        raise ConfigError(f"teacher.lora.target_modules={list(config.target_modules)} matches no linear layer; "
                          f"this model's linear layers are named: {', '.join(linear)}")
    for name, module in found:
        parent_name, _, child = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        module.requires_grad_(False)
        wrapped = MoLoRALinear(module, config, gate, uniform_dropout)
        wrapped.to(device=module.weight.device)
        setattr(parent, child, wrapped)
    return [name for name, _ in found]


def molora_layers(model: nn.Module) -> list[MoLoRALinear]:
    return [m for m in model.modules() if isinstance(m, MoLoRALinear)]
