"""Route the pipeline's overrides to the pipeline config and to each stage.

On the command line (and in a profile):

* ``paths.*``, ``pipeline.*``, ``profile.*`` (and ``profile=NAME``) set the pipeline's own config; the
  ``paths`` it ends up with are given to every stage;
* ``STAGE:key=value`` (``student:train.max_epochs=5``) goes to that stage only, and must be valid there;
* any other ``key=value`` (``efficiency.seed=1``, ``dataset=csv``) goes to every stage whose config has
  that key or group, and is an error when no stage has it (a typo must not pass silently).
"""

from __future__ import annotations

from recdistill.config import has_key
from recdistill.errors import ConfigError

PIPELINE_KEYS = ("paths", "pipeline", "profile")


def split_stage_prefix(item: str, stages: tuple[str, ...]) -> tuple[str | None, str]:
    """``"student:train.lr=0.01"`` -> ``("student", "train.lr=0.01")``; no prefix -> ``(None, item)``."""
    head, sep, rest = item.partition(":")
    if sep and "=" not in head and head in stages:
        return head, rest
    if sep and "=" not in head and "." not in head and head.isidentifier():
        raise ConfigError(f"'{item}': unknown stage '{head}'; prefix an override with one of: {', '.join(stages)}")
    return None, item


def _top(item: str) -> str:
    return item.split("=", 1)[0].lstrip("+").split(".", 1)[0].strip()


def route(items: list[str], stages: tuple[str, ...]) -> tuple[list[str], list[str], dict[str, list[str]]]:
    """Split command-line overrides into (pipeline, every-stage, per-stage)."""
    pipeline, common, per_stage = [], [], {s: [] for s in stages}
    for item in items:
        stage, rest = split_stage_prefix(item, stages)
        if stage is not None:
            per_stage[stage].append(rest)
        elif _top(item) in PIPELINE_KEYS:
            pipeline.append(item)
        else:
            common.append(item)
    return pipeline, common, per_stage


def applies_to(cfg, item: str) -> bool:
    """Does a ``key=value`` override name a key (or a config group) that ``cfg`` has?"""
    key = item.split("=", 1)[0].strip()
    if key.startswith("+"):
        return False  # adding keys is for one stage at a time (STAGE:+key=value)
    choices = cfg.get("choices") or {}
    if "." not in key and key in choices:
        return True
    return has_key(cfg, key)
