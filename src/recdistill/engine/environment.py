"""The environment a run was measured in: versions, device, threads."""

from __future__ import annotations

import os
import platform
from importlib import metadata

import torch

from recdistill.engine.cpu_bf16 import cpu_bf16

PACKAGES = ("recdistill", "torch", "lightning", "transformers", "peft", "numpy", "pandas", "pyarrow")


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def describe_environment() -> dict:
    env = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "packages": {name: _version(name) for name in PACKAGES},
        "cuda_available": torch.cuda.is_available(),
    }
    if torch.cuda.is_available():
        env["device"] = torch.cuda.get_device_name(0)
        env["cuda_version"] = torch.version.cuda
        env["gpu_count"] = torch.cuda.device_count()
        env["bf16_supported"] = torch.cuda.is_bf16_supported()
    else:
        env["device"] = f"cpu ({env['processor']}, {env['cpu_count']} cores)"
        # what precision=auto / llm.dtype=auto decided for an LLM on this CPU, and the probe behind it
        env["cpu_bf16"] = cpu_bf16().to_dict()
    return env
