"""Number formatting shared by the report and the commands' messages."""

from __future__ import annotations

# metrics that count things: shown as integers, their change as an integer difference (never a percentage)
INTEGER_NAMES = ("best_epoch", "epochs_trained", "train_steps", "users", "short_users", "global_step")


def is_integer_metric(key: str) -> bool:
    name = key.rsplit("/", 1)[-1]
    return any(name == n or name.endswith("_" + n) for n in INTEGER_NAMES)


def percent(fraction: float) -> str:
    """A share as a percentage with enough digits to be non-zero when the share is: 0.0005 -> 0.05 %."""
    if fraction == 0:
        return "0 %"
    value = 100 * fraction
    return f"{value:.1f} %" if abs(value) >= 1 else f"{value:.2g} %"


def sampled_note(metrics: dict, key: str) -> str:
    """What to say beside a sampled-protocol value (``<split>/sampled<N>_...``): plainly the protocol, or
    that for some (or all) users it is the full ranking, because they have fewer than N unseen items."""
    split, name = key.split("/", 1)
    family = name.split("_", 1)[0]                     # sampled100
    short, users = metrics.get(f"{split}/{family}_short_users"), metrics.get(f"{split}/users")
    if not short or not users:
        return "(sampled protocol)"
    n = family[len("sampled"):]
    if short >= users:
        return f"(n/a: every user has fewer than {n} unseen items, so this is the full ranking)"
    return f"(sampled protocol; {int(short)} of {int(users)} users have fewer than {n} unseen items: full ranking for them)"
