"""``recdistill config show <command> [key=value ...]``: the resolved config with each key's comment.

The comments are the ones written in the YAML files under ``conf/`` (``key: value  # comment`` and the
indented comment lines that continue it). YAML loaders drop comments, and the one library that keeps
them (ruamel.yaml) is not a dependency; our files use one plain layout, so a small line reader does.
"""

from __future__ import annotations

import re
from pathlib import Path

from omegaconf import DictConfig, OmegaConf

from recdistill.config.compose import compose, conf_root, option_files
from recdistill.errors import ConfigError

_KEY_LINE = re.compile(r"^(?P<indent>\s*)(?P<key>[A-Za-z_+][\w.@+-]*):(?P<rest>.*)$")
_COMMENT = re.compile(r"(?:^|\s)#\s?(?P<text>.*)$")


def roots() -> list[str]:
    return sorted(p.stem for p in conf_root().glob("*.yaml"))


def key_comments(path: Path, prefix: str = "") -> dict[str, str]:
    """``{dotted key: comment}`` from one YAML file; keys under ``prefix`` (a group's name)."""
    comments: dict[str, str] = {}
    stack: list[tuple[int, str]] = []   # (indent, key) of the enclosing mappings
    header: list[str] = []              # comment lines just above a key, at its indent
    last_key, last_indent = None, -1
    for line in path.read_text(encoding="utf-8").splitlines():
        stripped = line.strip()
        indent = len(line) - len(line.lstrip())
        if not stripped or stripped.startswith("- "):
            header = []
            continue
        if stripped.startswith("#"):
            text = stripped.lstrip("#").strip()
            if last_key and indent > last_indent and not header:  # continues the comment of the key above
                comments[last_key] = (comments.get(last_key, "") + " " + text).strip()
            else:
                header.append(text)
            continue
        m = _KEY_LINE.match(line)
        if not m:
            continue
        while stack and stack[-1][0] >= indent:
            stack.pop()
        dotted = ".".join([prefix] * bool(prefix) + [k for _, k in stack] + [m["key"]])
        inline = _COMMENT.search(m["rest"])
        text = inline["text"].strip() if inline else ""
        if header and last_key is not None and (indent > 0 or not text):  # a file's opening lines describe the file
            text = (" ".join(header) + (" " + text if text else "")).strip()
        if text:
            comments[dotted] = text
        header = []
        stack.append((indent, m["key"]))
        last_key, last_indent = dotted, indent
    return comments


def config_comments(root: str, cfg: DictConfig) -> dict[str, str]:
    """Comments of every file the config was composed from: the command's root file and each group option."""
    conf = conf_root()
    comments: dict[str, str] = {}
    for group, option in (cfg.get("choices") or {}).items():
        for path in option_files(str(group), str(option)):  # the options it builds on first: its own comments win
            comments.update(key_comments(path, str(group)))
    comments.update(key_comments(conf / f"{root}.yaml"))
    return comments


def annotate(yaml_text: str, comments: dict[str, str], width: int = 44) -> str:
    """Append each key's comment to its line of ``yaml_text`` (as OmegaConf writes it: 2-space indents)."""
    out, stack = [], []
    for line in yaml_text.splitlines():
        m = _KEY_LINE.match(line)
        if not m or line.lstrip().startswith("- "):
            out.append(line)
            continue
        indent = len(m["indent"])
        while stack and stack[-1][0] >= indent:
            stack.pop()
        stack.append((indent, m["key"]))
        comment = comments.get(".".join(k for _, k in stack))
        out.append(f"{line:<{width}}  # {comment}" if comment else line)
    return "\n".join(out) + "\n"


def show_config(root: str, overrides: list[str], files: list[str] = ()) -> str:
    if root not in roots():
        raise ConfigError(f"no command config '{root}'; choose one of: {', '.join(roots())}")
    cfg = compose(root, overrides, files)
    return annotate(OmegaConf.to_yaml(cfg), config_comments(root, cfg))


def show(args) -> int:
    print(show_config(args.target, list(args.overrides), list(getattr(args, "config", []) or [])), end="")
    return 0
