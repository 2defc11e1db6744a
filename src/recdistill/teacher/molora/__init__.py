"""Mixture-of-LoRA experts (iLoRA), laid out the way PEFT lays out a tuner: config, layer, model.

PEFT has no per-sample soft mixture of LoRA experts (its mixed-batch ``adapter_names`` sends each sample
to one adapter), so these few layers are written here; plain LoRA (``teacher.mode=lora``) uses PEFT.
"""

from recdistill.teacher.molora.config import MoLoRAConfig
from recdistill.teacher.molora.layer import GateState, MoLoRALinear
from recdistill.teacher.molora.model import inject_molora, molora_layers

__all__ = ["MoLoRAConfig", "GateState", "MoLoRALinear", "inject_molora", "molora_layers"]
