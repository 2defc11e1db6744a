"""Compose a run's config from YAML groups and ``key=value`` overrides.

The layout follows Hydra's convention (``conf/<group>/<option>.yaml`` and a ``defaults`` list in the
command's root file), but composition is done here with OmegaConf directly. Hydra's compose API would
work too; we write the ~100 lines ourselves because we want (a) errors that name the valid keys or
options instead of Hydra's generic ``Key 'x' is not in struct`` and (b) no Hydra side effects (changing
the working directory, its own logging and output folders) inside a library command.

Override forms, as on Hydra's command line:

* ``group=option``  picks another file for a group (``dataset=ml-1m``, ``train=teacher``);
* ``a.b.c=value``   sets an existing key (values parsed as YAML: ``3``, ``true``, ``[1,2]``, ``null``);
* ``+a.b=value``    adds a key that does not exist yet (rarely needed).

A group option may build on another option of its group instead of copying it: ``defaults: [ilora]``
at the top of ``conf/teacher/lora.yaml`` starts from ``conf/teacher/ilora.yaml`` and the file's own keys
override (:func:`option_files`); ``config show`` reads each key's comment from the file that sets it.

A key that does not exist is an error that lists the valid keys at that level. Every value set by an
override or a file must have the type of the key's YAML default (or a type declared in
:mod:`recdistill.config.types`), and the ``paths`` a run writes to must be writable folders
(:func:`recdistill.config.validate.check_writable_folders`): both are checked here, before anything runs.
"""

from __future__ import annotations

import os
from importlib import resources
from pathlib import Path
from typing import Iterable

import yaml
from omegaconf import DictConfig, ListConfig, OmegaConf

from recdistill.config.types import checked_value, default_of
from recdistill.config.validate import check_writable_folders
from recdistill.errors import ConfigError
from recdistill.hashing import stable_hash

CONF_PACKAGE = "recdistill.config"


def conf_root() -> Path:
    return Path(str(resources.files(CONF_PACKAGE) / "conf"))


def list_options(group: str) -> list[str]:
    """Options of a config group: the YAML files in ``conf/<group>/``."""
    folder = conf_root() / group
    if not folder.is_dir():
        return []
    return sorted(p.stem for p in folder.glob("*.yaml"))


def config_groups() -> list[str]:
    return sorted(p.name for p in conf_root().iterdir() if p.is_dir() and not p.name.startswith("_"))


def _load_yaml(path: Path) -> DictConfig:
    try:
        cfg = OmegaConf.load(path)
    except Exception as exc:  # yaml errors carry line numbers; keep them
        raise ConfigError(f"cannot parse config file {path}: {exc}") from exc
    if not isinstance(cfg, DictConfig):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return cfg


def option_files(group: str, option: str, _chain: tuple[str, ...] = ()) -> list[Path]:
    """The files a group option is made of, in merge order: the options it builds on (its ``defaults``
    list, as in Hydra: ``defaults: [ilora]`` in ``teacher/lora.yaml`` starts from ``teacher/ilora.yaml``),
    then its own file, whose keys override theirs."""
    path = conf_root() / group / f"{option}.yaml"
    if not path.is_file():
        valid = ", ".join(list_options(group)) or "(none)"
        raise ConfigError(f"unknown {group} '{option}'; choose one of: {valid}")
    files: list[Path] = []
    for base in _load_yaml(path).get("defaults", []):
        if not isinstance(base, str) or base in (*_chain, option):
            raise ConfigError(f"bad defaults entry {base!r} in {path}: name another option of the "
                              f"'{group}' group (not one that builds on this file), whose keys this file overrides")
        files += [f for f in option_files(group, base, (*_chain, option)) if f not in files]
    return files + [path]


def _load_group_option(group: str, option: str) -> DictConfig:
    cfg = OmegaConf.create({})
    for path in option_files(group, option):
        own = _load_yaml(path)
        own.pop("defaults", None)
        cfg = OmegaConf.merge(cfg, own)
    return cfg


def parse_value(text: str):
    """Parse an override's value the way YAML would (``3`` -> int, ``true`` -> bool, ``[1,2]`` -> list)."""
    if text == "":
        return ""
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


def _split_override(item: str) -> tuple[str, str]:
    if "=" not in item:
        raise ConfigError(
            f"override '{item}' is not of the form key=value (for example train.batch_size=64 or dataset=ml-1m)"
        )
    key, value = item.split("=", 1)
    key = key.strip()
    if not key:
        raise ConfigError(f"override '{item}' has an empty key")
    return key, value.strip()


def _valid_keys_message(cfg: DictConfig, dotted: str) -> str:
    parts = dotted.split(".")
    node = cfg
    walked: list[str] = []
    for part in parts[:-1]:
        if isinstance(node, DictConfig) and part in node:
            node = node[part]
            walked.append(part)
        else:
            break
    where = ".".join(walked) or "the top level"
    if isinstance(node, DictConfig):
        keys = ", ".join(sorted(str(k) for k in node.keys()))
        return f"unknown config key '{dotted}'; valid keys under {where}: {keys}"
    return f"unknown config key '{dotted}': '{where}' is a value, not a section"


def _key_exists(cfg: DictConfig, dotted: str) -> bool:
    node = cfg
    for part in dotted.split("."):
        if isinstance(node, DictConfig) and part in node:
            node = node._get_node(part)  # keeps interpolations unresolved
        elif isinstance(node, ListConfig) and part.isdigit() and int(part) < len(node):
            node = node[int(part)]
        else:
            return False
    return True


def compose(
    root: str,
    overrides: Iterable[str] = (),
    extra_files: Iterable[str | os.PathLike] = (),
) -> DictConfig:
    """Build the config for a command.

    Args:
        root: name of the command's root file in ``conf/`` (``student`` -> ``conf/student.yaml``).
        overrides: ``key=value`` strings, applied last.
        extra_files: YAML files of plain values merged after the defaults and before ``overrides``
            (for example a config written by ``recdistill bench --apply-best``). Their keys must exist.

    Returns:
        A resolved, read-only ``DictConfig``. ``cfg._choices`` is not kept; the chosen group options are
        recorded under ``choices`` so the resolved config says which files it came from.
    """
    root_path = conf_root() / f"{root}.yaml"
    if not root_path.is_file():
        raise ConfigError(f"no root config '{root}'")
    root_cfg = _load_yaml(root_path)
    defaults = root_cfg.pop("defaults", [])
    choices: dict[str, str] = {}
    for entry in defaults:
        if isinstance(entry, (dict, DictConfig)):
            for group, option in entry.items():
                choices[str(group)] = str(option)
        else:
            raise ConfigError(f"bad defaults entry {entry!r} in {root_path}")

    overrides = list(overrides)
    groups = set(config_groups())
    value_overrides: list[tuple[str, str]] = []
    for item in overrides:
        key, value = _split_override(item)
        if key in groups:
            if key not in choices:
                raise ConfigError(
                    f"config group '{key}' is not used by this command; groups here: {', '.join(sorted(choices))}"
                )
            choices[key] = value
        else:
            value_overrides.append((key, value))

    cfg = OmegaConf.create({})
    for group, option in choices.items():
        cfg[group] = _load_group_option(group, option)
    cfg = OmegaConf.merge(cfg, root_cfg)
    cfg["choices"] = dict(choices)
    OmegaConf.set_struct(cfg, True)
    defaults = OmegaConf.to_container(cfg, resolve=False)  # each key's YAML default gives its type

    for path in extra_files:
        extra = _load_yaml(Path(path))
        for key, value in _flatten(extra):
            if not _key_exists(cfg, key):
                raise ConfigError(f"in {path}: " + _valid_keys_message(cfg, key))
            try:
                value = checked_value(key, value, *default_of(defaults, key))
            except ConfigError as exc:
                raise ConfigError(f"in {path}: {exc}") from None
            OmegaConf.update(cfg, key, value, merge=False)

    for key, value in value_overrides:
        force_add = key.startswith("+")
        key = key.lstrip("+")
        if not force_add and not _key_exists(cfg, key):
            raise ConfigError(_valid_keys_message(cfg, key) + " (prefix with + to add a new key)")
        parsed = checked_value(key, parse_value(value), *default_of(defaults, key))
        with _open_struct(cfg, force_add):
            OmegaConf.update(cfg, key, parsed, merge=False, force_add=force_add)

    try:
        OmegaConf.resolve(cfg)
    except Exception as exc:
        raise ConfigError(f"cannot resolve config: {exc}") from exc
    OmegaConf.set_readonly(cfg, True)
    check_writable_folders(cfg, ("paths.data_dir", "paths.runs_dir"))
    return cfg


class _open_struct:
    def __init__(self, cfg: DictConfig, open_: bool):
        self.cfg, self.open_ = cfg, open_

    def __enter__(self):
        if self.open_:
            OmegaConf.set_struct(self.cfg, False)

    def __exit__(self, *exc):
        OmegaConf.set_struct(self.cfg, True)


def _flatten(cfg: DictConfig, prefix: str = "") -> list[tuple[str, object]]:
    out: list[tuple[str, object]] = []
    for key in cfg.keys():
        dotted = f"{prefix}{key}"
        value = cfg._get_node(key)
        if isinstance(value, DictConfig):
            out.extend(_flatten(value, dotted + "."))
        else:
            out.append((dotted, OmegaConf.to_container(value) if isinstance(value, ListConfig) else value._value()))
    return out


def to_yaml(cfg: DictConfig) -> str:
    return OmegaConf.to_yaml(cfg, resolve=True)


def config_hash(cfg: DictConfig | dict, keys: Iterable[str] | None = None) -> str:
    """A short stable hash of (part of) a config, used to decide whether a stage's outputs are current."""
    container = OmegaConf.to_container(cfg, resolve=True) if isinstance(cfg, DictConfig) else cfg
    if keys is not None:
        container = {k: container.get(k) for k in keys}
    return stable_hash(container)


def to_plain(cfg: DictConfig | None) -> dict:
    """The resolved config as plain dicts and lists (what components, manifests and hashes receive)."""
    return OmegaConf.to_container(cfg, resolve=True) if cfg is not None else {}


def has_key(cfg: DictConfig, dotted: str) -> bool:
    """Does ``cfg`` hold the dotted key ``a.b.c``?"""
    return _key_exists(cfg, dotted)
