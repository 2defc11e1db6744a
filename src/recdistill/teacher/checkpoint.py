"""Teacher adapters on disk: only the trained tensors, never a base weight.

``<folder>/adapter.safetensors`` holds the trained parameters by name (mixture-of-LoRA experts or PEFT
LoRA, projector, gate) and ``<folder>/adapter.json`` what is needed to rebuild the model around them:
the teacher spec, the ``llm`` config, the student checkpoint path, the prompt settings and the dataset
fingerprint. Loading builds a fresh base (quantized again if the run was: NF4 quantization of the same
fp weights is deterministic, so the base is bit-identical), wraps it the same way, and loads the saved
tensors by name with every trained parameter required to be present. Keys therefore never include
bitsandbytes' quantization state (``absmax``, ``quant_map``), which broke the prototype's QLoRA
checkpoints (seed 001, 3.8).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors.torch import save_file

from recdistill.engine.checkpoint_files import read_safetensors_file
from recdistill.engine.rundir import atomic_write_text
from recdistill.errors import RecdistillError
from recdistill.teacher.model import ILoRATeacher

WEIGHTS = "adapter.safetensors"
META = "adapter.json"


def save_adapter(teacher: ILoRATeacher, folder: str | Path, meta: dict) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu").contiguous() for k, v in teacher.trainable_state_dict().items()}
    tmp = folder / (WEIGHTS + ".tmp")
    save_file(tensors, str(tmp))
    tmp.replace(folder / WEIGHTS)
    body = {"spec": teacher.spec.to_dict(), "num_tensors": len(tensors),
            "num_parameters": int(sum(t.numel() for t in tensors.values())), **meta}
    atomic_write_text(folder / META, json.dumps(body, indent=2, default=str) + "\n")
    return folder


def read_adapter_meta(folder: str | Path) -> dict:
    folder = Path(folder)
    if not (folder / META).is_file() or not (folder / WEIGHTS).is_file():
        raise RecdistillError(f"{folder} is not a teacher adapter folder (it needs {META} and {WEIGHTS}, as "
                              "written by `recdistill train teacher` into <run>/adapter)")
    try:
        return json.loads((folder / META).read_text())
    except json.JSONDecodeError:
        raise RecdistillError(f"{folder / META} is not a recdistill adapter description, or truncated; "
                              "rerun `recdistill train teacher`") from None


def load_adapter_weights(teacher: ILoRATeacher, folder: str | Path) -> None:
    """Load saved trained tensors into a freshly built teacher; names and shapes must match exactly."""
    saved = read_safetensors_file(Path(folder) / WEIGHTS, "teacher adapter")
    own = {**dict(teacher.named_parameters()), **teacher.gate_buffers()}
    trainable = {n for n, p in own.items() if p.requires_grad} | set(teacher.gate_buffers())
    missing = sorted(trainable - saved.keys())
    unexpected = sorted(set(saved) - trainable)
    if missing or unexpected:
        raise RecdistillError(f"adapter {folder} does not fit this teacher: missing {missing[:3]}, unexpected "
                              f"{unexpected[:3]} (was it trained with another teacher.mode, lora or llm setting?)")
    with torch.no_grad():
        for name, tensor in saved.items():
            param = own[name]
            if param.shape != tensor.shape:
                raise RecdistillError(f"adapter {folder}: {name} has shape {tuple(tensor.shape)}, the model expects "
                                      f"{tuple(param.shape)}")
            param.copy_(tensor.to(param.dtype))
