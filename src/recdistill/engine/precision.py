"""Every "auto" of device, precision and dtype is decided here: the Lightning accelerator and precision
(``efficiency.accelerator``, ``efficiency.precision``), the torch device of inference code
(``teacher.device``) and the LLM's dtype (``llm.dtype``)."""

from __future__ import annotations

import torch

from recdistill.engine.cpu_bf16 import cpu_bf16
from recdistill.errors import ConfigError

PRECISIONS = ("auto", "32-true", "bf16-mixed", "16-mixed", "bf16-true", "16-true", "64-true")


def resolve_accelerator(requested: str) -> str:
    """``auto`` -> ``gpu`` when CUDA is available, else ``cpu``. Asking for a GPU without one is an error."""
    requested = str(requested)
    if requested == "auto":
        return "gpu" if torch.cuda.is_available() else "cpu"
    if requested in ("gpu", "cuda"):
        if not torch.cuda.is_available():
            raise ConfigError("efficiency.accelerator=gpu but no CUDA device is visible; use accelerator=cpu or auto")
        return "gpu"
    if requested == "cpu":
        return "cpu"
    raise ConfigError(f"efficiency.accelerator={requested!r} is not valid; choose one of: auto, cpu, gpu")


def resolve_precision(requested: str, accelerator: str, llm: bool = False) -> str:
    """Turn ``auto`` into a Lightning precision string and refuse combinations that cannot run.

    ``auto``: ``bf16-mixed`` on a GPU that supports bf16, ``16-mixed`` on older GPUs. On a CPU it depends
    on the workload and the machine: ``llm=True`` (the LLM teacher, whose products are [tokens x 576] x
    [576 x 1536] and larger) gets ``bf16-mixed`` where this CPU's bf16 products are measured faster than
    fp32 (:func:`recdistill.engine.cpu_bf16.cpu_bf16`), else ``32-true``; the recommenders (64-wide products,
    where casts cost as much as they save) and everything on a CPU without fast bf16 get ``32-true``.
    """
    requested = str(requested)  # one of PRECISIONS: checked when the settings were built (engine.settings.Efficiency)
    if requested == "auto":
        if accelerator == "gpu":
            return "bf16-mixed" if torch.cuda.is_bf16_supported() else "16-mixed"
        return "bf16-mixed" if llm and cpu_bf16().fast else "32-true"
    if accelerator == "cpu" and requested in ("16-mixed", "16-true"):
        raise ConfigError(
            f"efficiency.precision={requested} needs a GPU (fp16 autocast is CUDA-only); "
            "use 32-true or bf16-mixed on a CPU"
        )
    if accelerator == "gpu" and requested.startswith("bf16") and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"efficiency.precision={requested} but this GPU has no bf16 support; use 16-mixed")
    return requested


DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def resolve_device(setting: str, key: str = "teacher.device") -> str:
    """A torch device for inference: ``auto`` (CUDA when visible) | ``cuda`` | ``cpu``; asking for CUDA
    without one is an error naming ``key``."""
    setting = str(setting)
    if setting == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if setting == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"{key}=cuda but no CUDA device is visible; use {key}=auto or cpu")
    return setting


def resolve_dtype(requested: str, quantization: str = "none") -> torch.dtype:
    """``llm.dtype``, the frozen base model's weights. ``auto``: bf16 on a CUDA GPU that has it, else fp16;
    on a CPU bf16 where its bf16 products are measured faster than fp32 (:mod:`.cpu_bf16`), else fp32. The
    trained parts (adapters, projector, gate) stay fp32 and run under autocast. With 4/8-bit quantization
    the dtype is the compute dtype of the dequantized matmuls."""
    requested = str(requested)
    if requested == "auto":
        if torch.cuda.is_available():
            return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
        return torch.bfloat16 if cpu_bf16().fast else torch.float32
    if requested not in DTYPES:
        raise ConfigError(f"llm.dtype={requested!r} is not valid; choose one of: auto, {', '.join(DTYPES)}")
    return DTYPES[requested]


def explain_cpu_choice() -> str:
    """One line saying what ``auto`` picks for the LLM on this CPU and why (printed by the teacher commands)."""
    choice = cpu_bf16()
    return f"auto precision on this CPU: {'bf16' if choice.fast else 'fp32'} for the LLM ({choice.reason})"
