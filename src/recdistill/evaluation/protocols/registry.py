"""The evaluation protocols, each described once: the name ``eval.protocol`` spells, the metric keys of
its family, the title and sentence the report shows, and, for a protocol ``eval student`` runs on demand,
how it reads its settings and runs.

Protocols register themselves: every module of this package is imported on the first lookup
(discovery, not a list), so a new protocol is one module here plus its keys in ``conf/eval/default.yaml``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Callable

from recdistill.engine.registry import Registry
from recdistill.errors import ConfigError

RANKING_METRIC = r"(?:hr|ndcg|recall|mrr)@\d+"
SPLITS = ("val", "test")
RunLike = tuple[str, dict]  # (run label, numeric metrics): what a protocol's report notes read


@dataclass(frozen=True)
class Protocol:
    name: str               # as eval.protocol spells it (and its report file: <name>_protocol.json)
    prefix: str             # regex of the family's key prefix after "<split>/", e.g. r"sampled(?P<n>\d+)_"; "" = none
    title: str              # the report's heading; str.format over the prefix's named groups
    about: str | Callable[[dict], str]  # one sentence; a format string, or a function of the prefix's groups
    #                                     and the runs' `eval` settings (key "eval")
    metric: str = RANKING_METRIC        # regex of the rest of a key of this family
    rows: str | None = None             # regex of the keys (rest) that are rows of its table; None = metric
    notes: Callable[[dict, list[RunLike]], list[str]] | None = None  # the report's sentences under the title
    order: int = 5                      # position among the report's tables
    read_settings: Callable[[dict], Any] | None = None  # the `eval` group's values (a plain dict, read by the
    #                                     recipe) -> its checked settings
    run: Callable[[Any, Any, Any], tuple[dict, dict]] | None = None  # (data, model, settings) -> (metrics, report);
    #                                     None: computed by a LightningModule, not on demand

    def family_of(self, rest: str) -> str | None:
        """The family id (``sampled100``; the name when the prefix is empty) of a key without its split."""
        m = re.fullmatch(f"(?P<_prefix>{self.prefix})(?:{self.metric})", rest)
        if not m:
            return None
        return m["_prefix"].rstrip("_") or self.name

    def groups_of(self, family: str) -> dict | None:
        """The prefix's named groups for a family id (``{"n": "100"}``), or None if it is not this protocol's."""
        if not self.prefix:
            return {} if family == self.name else None
        m = re.fullmatch(self.prefix, family + "_")
        return m.groupdict() if m else None

    def is_row(self, rest: str) -> bool:
        m = re.fullmatch(f"{self.prefix}(?P<_rest>{self.metric})", rest)
        return bool(m) and re.fullmatch(self.rows or self.metric, m["_rest"]) is not None


_PROTOCOLS: Registry[Protocol] = Registry("evaluation protocol", __name__.rsplit(".", 1)[0])


def register(protocol: Protocol) -> Protocol:
    """Add a protocol (the package's own first, so a test's made-up one comes after them)."""
    _PROTOCOLS.discover()
    return _PROTOCOLS.register(protocol.name, protocol)


def unregister(name: str) -> None:
    """Remove a protocol (tests that register one of their own clean up with this)."""
    _PROTOCOLS.unregister(name)


def registered() -> list[Protocol]:
    """Every protocol, in the report's order."""
    return sorted(_PROTOCOLS.entries().values(), key=lambda p: (p.order, p.name))


DEFAULT = "full"  # eval.protocol=full: the full-catalogue (and sampled) ranking, which every evaluation computes


def on_demand_choices() -> list[str]:
    """The values ``eval.protocol`` accepts: the default, then each protocol ``eval student`` can run."""
    return [DEFAULT] + [p.name for p in registered() if p.run is not None]


def protocol_to_run(name: str) -> Protocol | None:
    """The protocol ``eval.protocol=<name>`` asks for on top of the default; None for the default."""
    choices = on_demand_choices()
    if name not in choices:
        raise ConfigError(f"eval.protocol={name!r} is not valid; choose one of: {', '.join(choices)} "
                          "(the protocols of recdistill.evaluation.protocols that eval student runs)")
    return None if name == DEFAULT else _PROTOCOLS.entries()[name]


def family_of(key: str) -> tuple[Protocol, str] | None:
    """(protocol, family id) of a metric key ``<split>/...``, or None for other keys (losses, counts, chance)."""
    split, _, rest = key.partition("/")
    if split not in SPLITS:
        return None
    for protocol in registered():
        family = protocol.family_of(rest)
        if family is not None:
            return protocol, family
    return None


def protocol_of_family(family: str) -> tuple[Protocol, dict]:
    """The protocol of a family id and the prefix's groups in it."""
    for protocol in registered():
        groups = protocol.groups_of(family)
        if groups is not None:
            return protocol, groups
    raise KeyError(f"no evaluation protocol has the metric family {family!r}")
