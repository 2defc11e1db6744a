"""Dynamic int8 quantization of the linear layers, for evaluation and generation on CPUs.

``torch.ao.quantization.quantize_dynamic`` stores each ``nn.Linear`` weight as int8 (per-tensor scale)
and quantizes activations on the fly, running the product with int8 kernels (fbgemm / oneDNN on x86).
Embeddings and LayerNorms stay fp32. PyTorch marks the ``torch.ao.quantization`` eager API as
deprecated in favour of torchao; it is still the one that runs on a plain CPU build without extra
packages, so we use it and silence only its deprecation notice.
"""

from __future__ import annotations

import copy
import io
import warnings

import torch
from torch import nn

from recdistill.errors import ConfigError

QUANTIZE_MODES = ("none", "int8")


def quantize_int8(model: nn.Module) -> nn.Module:
    """An int8 copy of ``model`` (the original is left as it is), in eval mode, on the CPU."""
    if any(p.is_cuda for p in model.parameters()):
        raise ConfigError("dynamic int8 quantization runs on the CPU only; load the checkpoint with the CPU")
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.ao.quantization is deprecated.*")
        warnings.filterwarnings("ignore", message=".*quantize_per_tensor.*deprecated.*")
        from torch.ao.quantization import quantize_dynamic

        return quantize_dynamic(copy.deepcopy(model).eval(), {nn.Linear}, dtype=torch.qint8)


def size_on_disk(model: nn.Module) -> int:
    """Bytes of ``torch.save(model.state_dict())``: what a checkpoint of the weights alone takes."""
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.save(model.state_dict(), buf)
    return buf.getbuffer().nbytes


def check_mode(mode: str) -> str:
    if mode not in QUANTIZE_MODES:
        raise ConfigError(f"lm.quantize={mode!r} is not valid; choose one of: {', '.join(QUANTIZE_MODES)}")
    return mode
