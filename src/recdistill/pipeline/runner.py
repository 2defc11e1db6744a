"""``recdistill pipeline``: prepare, student, teacher, export, distill, report, in order.

Each stage's outputs are recorded in ``<pipeline folder>/manifest.json`` with a key: a hash of the
stage's fully resolved config and of the outputs it reads. A stage whose recorded key matches and whose
outputs are still there is skipped (and says so); anything else runs. ``--from STAGE`` reruns that stage
and all after it. The manifest is rewritten atomically around every stage, so an interrupted pipeline
resumes where it stopped. With ``--seeds`` a stage may run once per seed (``pipeline/plan.py``); each run
has its own entry and key, so each seed is skipped on its own.
"""

from __future__ import annotations

import gc
import json
import resource
import time
from pathlib import Path

from recdistill.config import compose, config_hash, to_plain
from recdistill.engine.memory import peak_memory, reset_peak_memory
from recdistill.errors import ConfigError, RecdistillError
from recdistill.pipeline.manifest import Manifest, absolute_outputs, relative_outputs
from recdistill.pipeline.overrides import applies_to, route
from recdistill.pipeline.plan import Unit, build_plan
from recdistill.pipeline.stages import ORDER, STAGES, StageContext
from recdistill.recipes.config import load_config
from recdistill.recipes.seeds import SEED_KEY, check_seeds, parse_seeds, refuse_seed_override

CONFIGURED_STAGES = tuple(s for s in ORDER if STAGES[s].root)  # the ones that take overrides
# Settings that do not change a stage's results, left out of its key.
UNHASHED = (("paths", "cache_dir"),)


def _fmt_seconds(seconds: float) -> str:
    minutes, secs = divmod(seconds, 60)
    return f"{int(minutes)}m{secs:04.1f}s" if minutes else f"{secs:.1f}s"


def _check_stage_name(value: str, what: str) -> int:
    if value not in ORDER:
        raise ConfigError(f"unknown stage '{value}' in {what}; choose one of: {', '.join(ORDER)}")
    return ORDER.index(value)


def _pipeline_config(args):
    pipeline_items, _, _ = route(list(args.overrides or []), CONFIGURED_STAGES)
    seeds = parse_seeds(getattr(args, "seeds", None))
    if seeds is not None:  # --seeds 0,1,2 is pipeline.seeds=[0,1,2]
        pipeline_items.append(f"pipeline.seeds=[{','.join(map(str, seeds))}]")
    return compose("pipeline", [f"profile={args.profile}", *pipeline_items], args.config or [])


def _seeds(cfg, common: list[str], per_stage: dict[str, list[str]]) -> list[int] | None:
    """``pipeline.seeds`` checked; with a seed list, efficiency.seed given on the command line as well would be
    ambiguous. A profile's own ``efficiency.seed`` (the cpu profile's seed 0) is a default that the seed list
    replaces: each unit's seed comes after the profile's overrides (``stage_overrides``)."""
    seeds = to_plain(cfg.pipeline).get("seeds")
    if seeds is None:
        return None
    seeds = parse_seeds(seeds) if isinstance(seeds, str) else check_seeds(seeds)
    refuse_seed_override([*common, *(x for items in per_stage.values() for x in items)])
    return seeds


def _folder(cfg) -> Path:
    if cfg.pipeline.dir:
        return Path(str(cfg.pipeline.dir)).expanduser()
    return Path(str(cfg.paths.runs_dir)).expanduser() / f"pipeline-{cfg.profile.name}"


def _path_overrides(cfg, folder: Path) -> list[str]:
    """Every stage shares the pipeline's data and cache folders and writes its runs into the pipeline folder."""
    return [f"paths.data_dir={cfg.paths.data_dir}", f"paths.cache_dir={cfg.paths.cache_dir}",
            f"paths.runs_dir={folder}"]


def compose_stage(name: str, overrides: list[str], announce: bool = False):
    """The stage's config, composed as its command composes it (``bench --apply-best`` settings included)."""
    try:
        return load_config(STAGES[name].root, overrides, applied=True, announce=announce)
    except ConfigError as exc:
        if str(exc).startswith("no root config"):
            raise ConfigError(f"stage {name} is not available in this version (no config root "
                              f"'{STAGES[name].root}'); stop before it with pipeline.until=...") from exc
        raise ConfigError(f"stage {name}: {exc}") from exc


def stage_overrides(name: str, cfg, folder: Path, common: list[str], per_stage: dict[str, list[str]],
                    upstream: dict[str, dict], seed: int | None = None) -> list[str]:
    """Paths, then the overrides for every stage that apply here, then the profile's and the command
    line's for this stage, then the unit's seed (where the stage has one), then the links to earlier
    outputs (last, so nothing can undo them)."""
    base = _path_overrides(cfg, folder)
    base_cfg = compose_stage(name, base)
    shared = [item for item in common if applies_to(base_cfg, item)]
    own = [str(x) for x in (cfg.profile.get(name) or [])] + per_stage.get(name, [])
    seeded = [f"{SEED_KEY}={seed}"] if seed is not None and applies_to(base_cfg, f"{SEED_KEY}={seed}") else []
    return base + shared + own + seeded + STAGES[name].link(upstream, folder)


def _check_common(common: list[str], cfg, folder: Path) -> None:
    """An override meant for every stage must fit at least one of them (even one after pipeline.until)."""
    bases = []
    for name in ORDER:
        if STAGES[name].root:
            try:
                bases.append(compose_stage(name, _path_overrides(cfg, folder)))
            except ConfigError:
                continue  # a stage not available yet is reported when its turn comes
    for item in common:
        if "=" not in item:
            raise ConfigError(f"override '{item}' is not of the form key=value")
        if not any(applies_to(base, item) for base in bases):
            raise ConfigError(f"override '{item}' matches no stage's config; check the key, or give it to one "
                              f"stage as STAGE:{item} (stages: {', '.join(CONFIGURED_STAGES)})")


def _key(cfg, inputs: dict[str, dict]) -> tuple[str, str]:
    """(config hash, key): the key also covers the outputs this stage reads."""
    container = to_plain(cfg)
    for section, field in UNHASHED:
        if isinstance(container.get(section), dict):
            container[section].pop(field, None)
    cfg_hash = config_hash(container)
    return cfg_hash, config_hash({"config": cfg_hash, "inputs": inputs})


def _cpu_seconds() -> float:
    """User + system CPU time of this process, all threads: unlike wall time, it does not grow when
    other programs share the machine."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _peak_rss(outputs: dict) -> float | None:
    """The stage's peak resident memory: our own reading, or the run's own stage records, whichever is
    higher (the run resets the high-water mark at each of its stages)."""
    peaks = [peak_memory().get("peak_rss_mb")]
    run = outputs.get("run")
    if run and (Path(run) / "stages.json").is_file():
        peaks += [r.get("peak_rss_mb") for r in json.loads((Path(run) / "stages.json").read_text())]
    peaks = [p for p in peaks if isinstance(p, (int, float))]
    return max(peaks) if peaks else None


def run_pipeline(args) -> dict:
    """Run or resume the pipeline; returns the manifest's stage entries."""
    cfg = _pipeline_config(args)
    _, common, per_stage = route(list(args.overrides or []), CONFIGURED_STAGES)
    common = [str(x) for x in (cfg.profile.get("all") or [])] + common
    last = _check_stage_name(str(cfg.pipeline.until), "pipeline.until")
    first_forced = _check_stage_name(args.from_stage, "--from") if args.from_stage else None
    if first_forced is not None and first_forced > last:
        raise ConfigError(f"--from {args.from_stage} comes after pipeline.until={cfg.pipeline.until}")
    seeds = _seeds(cfg, common, per_stage)
    folder = _folder(cfg)
    _check_common(common, cfg, folder)  # before anything is written
    folder.mkdir(parents=True, exist_ok=True)
    manifest = Manifest.load(folder, str(cfg.profile.name))
    manifest.data["pipeline_config"] = to_plain(cfg)
    plan = build_plan(ORDER, {n: STAGES[n].needs for n in ORDER}, seeds, bool(cfg.pipeline.get("teacher_per_seed")))
    units = [u for u in plan if ORDER.index(u.stage) <= last]
    manifest.data["entries"] = [u.entry for u in units]  # this plan's runs: what the report shows
    seeds_note = f", seeds {', '.join(map(str, seeds))}" if seeds else ""
    print(f"pipeline {cfg.profile.name}: {folder} ({cfg.profile.description}{seeds_note})")
    results: dict[str, dict] = {}
    started = time.perf_counter()
    for index, unit in enumerate(units):
        name, stage = unit.stage, STAGES[unit.stage]
        tag = f"[{index + 1}/{len(units)}] {unit.entry:<8}"
        reads = [(n, e) for n, e in unit.reads if e in results]
        upstream = {n: results[e] for n, e in reads}  # one per stage for the stages that link outputs
        inputs = {e: config_hash(results[e]) for _, e in reads}
        overrides = (stage_overrides(name, cfg, folder, common, per_stage, upstream, unit.seed)
                     if stage.root else [])
        stage_cfg = compose_stage(name, overrides, announce=True) if stage.root else None
        cfg_hash, key = _key(stage_cfg, inputs)
        entry = manifest.entry(unit.entry)
        recorded = absolute_outputs(entry.get("outputs"), folder)
        forced = first_forced is not None and ORDER.index(name) >= first_forced
        if not forced and entry.get("status") == "done" and entry.get("key") == key and stage.outputs_ok(recorded):
            print(f"{tag} skipped: outputs exist for the same config (key {key})", flush=True)
            results[unit.entry] = recorded
            continue
        why = ("--from " + args.from_stage) if forced else _why(entry, key)
        resume = _interrupted_run(stage_cfg) if stage.root and not forced and entry.get("key") == key else None
        if resume is not None:  # a killed or failed training stage continues from its last checkpoint
            overrides = [*overrides, f"train.resume={resume}"]
            stage_cfg = compose_stage(name, overrides)
            why += f"; resuming {resume.name} from its last checkpoint"
        print(f"{tag} running ({why})", flush=True)
        manifest.replace(unit.entry, {"status": "running", "key": key, "config_hash": cfg_hash, "inputs": inputs,
                                      "overrides": overrides, "started": time.strftime("%Y-%m-%dT%H:%M:%S")})
        gc.collect()
        reset_peak_memory()
        t0, cpu0 = time.perf_counter(), _cpu_seconds()
        ctx = StageContext(name, stage_cfg, overrides, folder, upstream, force=forced)
        try:
            outputs = stage.execute(ctx)
        except KeyboardInterrupt:
            manifest.update(unit.entry, status="interrupted", seconds=round(time.perf_counter() - t0, 2))
            raise
        except Exception as exc:
            manifest.update(unit.entry, status="failed", error=f"{type(exc).__name__}: {exc}",
                            seconds=round(time.perf_counter() - t0, 2))
            if isinstance(exc, RecdistillError):
                raise type(exc)(f"pipeline stage {unit.entry} failed: {exc}") from exc
            raise
        seconds = time.perf_counter() - t0
        outputs = absolute_outputs(outputs, Path.cwd())
        manifest.update(unit.entry, status="done", outputs=relative_outputs(outputs, folder), seconds=round(seconds, 2),
                        cpu_seconds=round(_cpu_seconds() - cpu0, 2), peak_rss_mb=_peak_rss(outputs),
                        finished=time.strftime("%Y-%m-%dT%H:%M:%S"))
        results[unit.entry] = outputs
        if config_hash(outputs) != config_hash(recorded):
            _mark_dependents_stale(manifest, plan, unit.entry)
        print(f"{tag} done in {_fmt_seconds(seconds)} (CPU {_fmt_seconds(_cpu_seconds() - cpu0)})", flush=True)
    print(f"pipeline {cfg.profile.name} finished in {_fmt_seconds(time.perf_counter() - started)}")
    if "report" in results:
        print(f"report: {results['report']['markdown']}")
        print(f"        {results['report']['html']}")
    return manifest.data["stages"]


def _mark_dependents_stale(manifest: Manifest, plan: list[Unit], changed: str) -> None:
    """Runs that read (directly or not) outputs that just changed no longer describe this pipeline: a
    report made now, or a run stopped early with pipeline.until, must not mix them with the new outputs."""
    affected = {changed}
    for unit in plan:
        if affected & {entry for _, entry in unit.reads}:
            affected.add(unit.entry)
            if manifest.entry(unit.entry).get("status") == "done":
                manifest.update(unit.entry, status="stale")


def _interrupted_run(stage_cfg) -> Path | None:
    from recdistill.config import has_key
    from recdistill.recipes.lifecycle import interrupted_run

    return interrupted_run(stage_cfg) if has_key(stage_cfg, "train.resume") else None


def _why(entry: dict, key: str) -> str:
    if not entry:
        return "not run before"
    if entry.get("status") == "stale":
        return "stale: a stage before it produced new outputs"
    if entry.get("status") != "done":
        return f"last attempt {entry.get('status')}"
    if entry.get("key") != key:
        return f"config or inputs changed (key {entry.get('key')} -> {key})"
    return "outputs missing"


def run(args) -> int:
    run_pipeline(args)
    return 0
