"""The ``dataset`` group read into :class:`~recdistill.data.settings.DatasetSettings`, and checked, once.

The group holds the common keys (the fields of ``DatasetSettings`` other than ``options``) and the keys of
its format (the fields of that format's ``options`` dataclass, ``data/formats/``); a key of neither is an
error, so no setting is silently ignored.
"""

from __future__ import annotations

from dataclasses import fields

from omegaconf import DictConfig, OmegaConf

from recdistill.data.duplicates import DUPLICATE_POLICIES
from recdistill.data.formats.registry import DatasetFormat, get_format
from recdistill.data.new_items import check_new_items
from recdistill.data.settings import DatasetSettings
from recdistill.data.split import MIN_USER_INTERACTIONS
from recdistill.errors import ConfigError

COMMON_KEYS = tuple(f.name for f in fields(DatasetSettings) if f.name != "options")


def dataset_settings(cfg: DictConfig) -> DatasetSettings:
    """``cfg.dataset`` as settings; a ConfigError naming the key for any value that is missing or not valid."""
    group = OmegaConf.to_container(cfg.dataset, resolve=True)
    fmt = get_format(group.get("format"))
    option_keys = tuple(f.name for f in fields(fmt.options))
    _check_keys(group, fmt, option_keys)
    settings = DatasetSettings(**{key: group[key] for key in COMMON_KEYS},
                               options=fmt.options(**{key: group[key] for key in option_keys}))
    _validate(settings)
    return settings


def _check_keys(group: dict, fmt: DatasetFormat, option_keys: tuple[str, ...]) -> None:
    missing = [key for key in (*COMMON_KEYS, *option_keys) if key not in group]
    if missing:
        raise ConfigError(f"dataset.format={fmt.name} needs dataset.{', dataset.'.join(missing)}; choose the format "
                          f"with dataset={fmt.name} (config/conf/dataset/{fmt.name}.yaml has every key)")
    unknown = [key for key in group if key not in COMMON_KEYS and key not in option_keys]
    if unknown:
        raise ConfigError(f"dataset.{', dataset.'.join(unknown)} is not a setting of dataset.format={fmt.name} "
                          f"(its own settings: {', '.join(option_keys) or 'none'}); choose the format's whole group "
                          f"with dataset=<format>")


def _whole_number(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _validate(s: DatasetSettings) -> None:
    """Check the common knobs; each error names the key and what is allowed."""
    if s.duplicates not in DUPLICATE_POLICIES:
        raise ConfigError(f"dataset.duplicates={s.duplicates!r} is not valid; choose one of: "
                          f"{', '.join(DUPLICATE_POLICIES)}")
    if not _whole_number(s.min_user_interactions) or s.min_user_interactions < MIN_USER_INTERACTIONS:
        raise ConfigError(f"dataset.min_user_interactions={s.min_user_interactions!r} is not valid; expected a whole "
                          f"number >= {MIN_USER_INTERACTIONS} (leave-one-out needs a train, a validation and a test item)")
    if not _whole_number(s.min_item_interactions) or s.min_item_interactions < 0:
        raise ConfigError(f"dataset.min_item_interactions={s.min_item_interactions!r} is not valid; expected a whole "
                          "number >= 0")
    if s.limit is not None and (not _whole_number(s.limit) or s.limit < 1):
        raise ConfigError(f"dataset.limit={s.limit!r} is not valid; expected a whole number of users >= 1, or null")
    threshold = s.rating_threshold
    if threshold is not None and (isinstance(threshold, bool) or not isinstance(threshold, (int, float))
                                  or threshold < 0):
        raise ConfigError(f"dataset.rating_threshold={threshold!r} is not valid; expected a number >= 0")
    check_new_items(s.new_items, str(s.new_items_by))
    if not str(s.name or "").strip() or "/" in str(s.name):
        raise ConfigError(f"dataset.name={s.name!r} is not valid; expected a folder name")
