"""``--seeds 0,1,2``: one run per seed (``train student``, ``train distill``; the pipeline plans its own),
then each metric's mean, sd and 95 % interval over the seeds, from ``recdistill.report.aggregate``."""

from __future__ import annotations

from typing import Callable

from recdistill.errors import ConfigError
from recdistill.recipes.config import load_config
from recdistill.recipes.lifecycle import RunResult, is_main_process
from recdistill.report.aggregate import summarize

SEED_KEY = "efficiency.seed"
SUMMARY_KEYS = ("val/ndcg@10", "test/ndcg@10", "test/hr@10", "test/mrr@10")


def parse_seeds(text: str | None) -> list[int] | None:
    """``"0,1,2"`` -> ``[0, 1, 2]``; ``None`` -> ``None`` (no seed list)."""
    if text is None:
        return None
    try:
        seeds = [int(part) for part in str(text).split(",") if part.strip()]
    except ValueError:
        raise ConfigError(f"--seeds {text!r} is not valid; expected comma-separated integers such as 0,1,2") from None
    if not seeds:
        raise ConfigError("--seeds is empty; give comma-separated integers such as 0,1,2")
    return check_seeds(seeds)


def check_seeds(seeds) -> list[int]:
    if not isinstance(seeds, (list, tuple)) or not seeds or not all(
            isinstance(s, int) and not isinstance(s, bool) for s in seeds):
        raise ConfigError(f"seeds {seeds!r} are not valid; expected a list of integers such as [0,1,2]")
    if len(set(seeds)) != len(seeds):
        raise ConfigError(f"seeds {list(seeds)} repeat a seed; each seed is one run")
    return list(seeds)


def refuse_seed_override(items: list[str]) -> None:
    """With a seed list, an ``efficiency.seed=`` override as well would be ambiguous."""
    if any(item.split("=", 1)[0].strip() == SEED_KEY for item in items):
        raise ConfigError(f"give the seeds either with --seeds or with {SEED_KEY}=..., not both")


def train_over_seeds(root: str, args, train: Callable[[object], RunResult],
                     show: Callable[[RunResult, object], None]) -> list[RunResult]:
    """Every seed's config is composed (and so checked) before the first run starts; then one run per
    seed, each printed as a single run is, and a summary over the seeds."""
    seeds = parse_seeds(args.seeds)
    refuse_seed_override(list(args.overrides))
    configs = [load_config(root, [*args.overrides, f"{SEED_KEY}={seed}"], args.config, applied=True,
                           announce=index == 0) for index, seed in enumerate(seeds)]
    results = []
    for seed, cfg in zip(seeds, configs):
        if is_main_process():
            print(f"\n== seed {seed} ({len(results) + 1} of {len(seeds)})")
        results.append(train(cfg))
        show(results[-1], cfg)
    if is_main_process():
        print(summary_text(seeds, results))
    return results


def summary_text(seeds: list[int], results: list[RunResult]) -> str:
    lines = [f"\nover seeds {', '.join(map(str, seeds))} (mean ± half-width of the 95 % t interval):"]
    for key in SUMMARY_KEYS:
        if all(key in r.metrics for r in results):
            lines.append(f"  {key:13s} {summarize([r.metrics[key] for r in results]).text()}")
    folders = " ".join(str(r.run_dir) for r in results)
    lines.append(f"  report over these runs (and others, paired by seed): recdistill report {folders}")
    return "\n".join(lines)
