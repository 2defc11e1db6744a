"""New and rare items: where the LLM's view of an item helps a small recommender, measured on ML-100K.

One prepared split with ``dataset.new_items=<share>`` (a seeded share of the catalogue held out of training),
then, per seed: the ID-only student (``train student``) and the distilled student (``train distill`` with
the frozen LLM's item-text embeddings as the embedding-distillation source, ``distill.item_embeddings``,
and the chosen ED options), both through the recipes users run. Popularity and the content-only ranker
(``evaluation/baselines.py``) are scored on the same users. Every arm is reported per bucket (new, tail,
torso, head, warm) with the mean and a 95 % t interval over seeds (test), and the paired differences
distilled - student and distilled - content.

    python benchmarks/new_items/new_items.py [--share 0.2] [--seeds 0,1,2] [--distill-args distill.ed.id_dropout=0.5 ...]

Resumable: each finished run's metrics are kept in ``<work>/runs.json`` and not redone. Writes
``<out>/new_items.json``, ``.md`` and ``.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository root
RESULTS = ROOT / "benchmarks" / "results"
BUCKETS = ("new", "tail", "torso", "head", "warm")
ARMS = ("student", "distilled", "content", "popularity")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--share", type=float, default=0.2)
    p.add_argument("--seeds", default="0,1,2")
    p.add_argument("--embeddings", default=None, help="an embed-items file (default: written by this script)")
    p.add_argument("--distill-args", nargs="*", default=["distill.ed.id_dropout=0.5", "distill.ed.gamma=1.0"])
    p.add_argument("--work", default="runs/new_items")
    p.add_argument("--note", default="", help="what else ran on the machine")
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument("--name", default="new_items", help="result file names: <out>/<name>.json, .md, .png")
    args = p.parse_args()

    from recdistill.config import compose
    from recdistill.data.prepared import load_prepared
    from recdistill.evaluation.baselines import baseline_metrics
    from recdistill.recipes.distill import train_distill
    from recdistill.recipes.embed_items import embed_items
    from recdistill.teacher.item_embeddings import read_item_embeddings
    from recdistill.recipes.prepare import ensure_prepared_from
    from recdistill.recipes.student import train_student

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    data_args = [f"dataset.new_items={args.share}"]
    prepared = ensure_prepared_from(compose("prepare", data_args))
    data = load_prepared(prepared)
    common = [f"prepared={prepared}", f"paths.runs_dir={work / 'runs'}", "run.progress_bar=false"]
    emb_path = args.embeddings or str(embed_items(compose("embed_items", data_args + [
        f"embed.out={work / 'item_embeddings'}", "embed.progress_bar=false"])))
    emb, emb_meta = read_item_embeddings(emb_path, data.num_items)

    runs_file = work / "runs.json"
    distill_key = " ".join(args.distill_args)
    runs = json.loads(runs_file.read_text()) if runs_file.is_file() else {}
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    for seed in seeds:
        for arm in ("student", "distilled"):
            key = f"{arm}-{seed}"
            if arm == "distilled" and key in runs and runs[key].get("distill_args") != distill_key:
                other = runs.pop(key)  # another arm's run: kept aside under its own name
                runs[f"distilled[{other.get('distill_args')}]-{seed}"] = other
            if key in runs:
                continue
            start = time.perf_counter()
            if arm == "student":
                result = train_student(compose("student", common + [f"efficiency.seed={seed}", f"run.name=student-s{seed}"]))
            else:
                result = train_distill(compose("distill", common + [
                    f"efficiency.seed={seed}", f"run.name=distilled-s{seed}", f"distill.item_embeddings={emb_path}",
                    "distill.kd.weight=0", *args.distill_args]))
            runs[key] = {"metrics": result.metrics, "run_dir": str(result.run_dir),
                         "seconds": round(time.perf_counter() - start, 1),
                         "distill_args": distill_key if arm == "distilled" else None}
            runs_file.write_text(json.dumps(runs, indent=1))
            print(f"{key}: test new {result.metrics.get('test/new_ndcg@10', float('nan')):.4f} "
                  f"warm {result.metrics.get('test/warm_ndcg@10', float('nan')):.4f}", flush=True)
    baselines = {name: {split: baseline_metrics(name, data, split, emb) for split in ("val", "test")}
                 for name in ("content", "popularity")}
    record = summarise(runs, baselines, seeds, data, args, emb_meta)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps(record, indent=2) + "\n")
    (out / f"{args.name}.md").write_text(markdown(record) + "\n")
    plot(record, out / f"{args.name}.png")
    print(markdown(record))
    return 0


def _metric(metrics: dict, split: str, bucket: str) -> float:
    return float(metrics.get(f"{split}/{bucket}_ndcg@10", float("nan")))


def summarise(runs: dict, baselines: dict, seeds: list[int], data, args, emb_meta: dict) -> dict:
    from recdistill.engine.cpu_bf16 import model_name
    from recdistill.report.aggregate import summarize

    def three(values):
        s = summarize(values)
        return {"mean": round(s.mean, 5), "ci95_low": None if s.low is None else round(s.low, 5),
                "ci95_high": None if s.high is None else round(s.high, 5), "n": s.n}

    per_seed = {arm: {split: {b: [_metric(runs[f"{arm}-{s}"]["metrics"], split, b) for s in seeds] for b in BUCKETS}
                      for split in ("val", "test")} for arm in ("student", "distilled")}
    for name in ("content", "popularity"):  # deterministic: the same value for every seed
        per_seed[name] = {split: {b: [_metric(baselines[name][split], split, b)] * len(seeds) for b in BUCKETS}
                          for split in ("val", "test")}
    first = runs[f"student-{seeds[0]}"]["metrics"]
    users = {split: {b: int(first.get(f"{split}/{b}_users", 0)) for b in BUCKETS} for split in ("val", "test")}
    arms = {arm: {b: {"ndcg@10": three(per_seed[arm]["test"][b])} for b in BUCKETS} for arm in ARMS}
    val_arms = {arm: {b: {"ndcg@10": three(per_seed[arm]["val"][b])} for b in BUCKETS} for arm in ARMS}
    paired = {}
    for other in ("student", "content"):
        paired[f"distilled-{other}"] = {
            b: three([d - o for d, o in zip(per_seed["distilled"]["test"][b], per_seed[other]["test"][b])])
            for b in BUCKETS}
    chance = {b: round(float(first.get(f"test/{b}_chance_ndcg@10", float("nan"))), 5) for b in BUCKETS}
    ratio = {"new": None}
    s_new, d_new = arms["student"]["new"]["ndcg@10"]["mean"], arms["distilled"]["new"]["ndcg@10"]["mean"]
    ratio["new"] = None if s_new == 0 else round(d_new / s_new, 2)
    return {"users": users, "arms": arms, "val_arms": val_arms, "paired": paired, "chance_test": chance,
            "distilled_over_student_new": ratio["new"], "per_seed_test": per_seed,
            "settings": {"share": args.share, "seeds": seeds, "distill_args": args.distill_args,
                         "new_items": {k: v for k, v in data.stats.get("new_items", {}).items() if k != "items"},
                         "cut_points": {"tail_max_count": first.get("test/bucket_tail_max_count"),
                                        "head_min_count": first.get("test/bucket_head_min_count")},
                         "embeddings": {k: emb_meta.get(k) for k in ("llm", "text", "pooling", "dtype", "seconds",
                                                                      "seconds_per_item", "example")}},
            "seconds": {k: v["seconds"] for k, v in runs.items()},
            "machine": {"cpu": model_name() or platform.processor(), "cores": os.cpu_count(), "note": args.note},
            "measured_at": time.strftime("%Y-%m-%d %H:%M")}


def markdown(r: dict) -> str:
    s = r["settings"]
    lines = ["# New and rare items on ML-100K", "",
             f"{s['share']:.0%} of the catalogue held out of training ({s['new_items'].get('removed_train_interactions')} "
             f"training interactions removed; `dataset.new_items={s['share']}`, random, seed 0). Seeds {s['seeds']}; "
             f"test NDCG@10, full catalogue, seen items excluded; mean and 95 % t interval over seeds. Buckets by the "
             f"target's training interactions: tail 1-{s['cut_points']['tail_max_count']:.0f}, head >= "
             f"{s['cut_points']['head_min_count']:.0f}, torso between; new = none; warm = every non-new target.",
             f"Distilled: `train distill distill.item_embeddings=<embed-items file> distill.kd.weight=0 "
             f"{' '.join(s['distill_args'])}` (frozen {s['embeddings']['llm']}, text like \"{s['embeddings']['example']}\", "
             f"{s['embeddings']['pooling']} pooling; {s['embeddings']['seconds_per_item']} s per item to embed).",
             f"Machine: {r['machine']['cpu']}, {r['machine']['cores']} cores. {r['machine']['note']}".rstrip(), "",
             "| bucket | users (test) | chance | student | distilled | content | popularity |", "|---|---|---|---|---|---|---|"]

    def cell(arm, b):
        x = r["arms"][arm][b]["ndcg@10"]
        if x["ci95_low"] is None or x["ci95_low"] == x["ci95_high"]:
            return f"{x['mean']:.4f}"
        return f"{x['mean']:.4f} [{x['ci95_low']:.4f}, {x['ci95_high']:.4f}]"

    for b in BUCKETS:
        lines.append(f"| {b} | {r['users']['test'][b]} | {r['chance_test'][b]:.4f} | " +
                     " | ".join(cell(a, b) for a in ARMS) + " |")
    lines += ["", "Paired differences (test NDCG@10, over seeds):", "", "| bucket | distilled - student | distilled - content |",
              "|---|---|---|"]
    for b in BUCKETS:
        row = [r["paired"][k][b] for k in ("distilled-student", "distilled-content")]
        lines.append(f"| {b} | " + " | ".join(
            f"{x['mean']:+.4f} [{x['ci95_low']:+.4f}, {x['ci95_high']:+.4f}]" if x["ci95_low"] is not None
            else f"{x['mean']:+.4f}" for x in row) + " |")
    ratio = r["distilled_over_student_new"]
    lines += ["", "Distilled / student on new-item users: " + (f"{ratio}x." if ratio is not None else
              "unbounded: the ID-only student scores 0.0000 there (below chance: its untrained vectors rank last)."),
              f"Validation users: {r['users']['val']}."]
    return "\n".join(lines)


def plot(r: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=(8, 4))
    width = 0.2
    x = np.arange(len(BUCKETS))
    for i, arm in enumerate(ARMS):
        means = [r["arms"][arm][b]["ndcg@10"]["mean"] for b in BUCKETS]
        ax.bar(x + (i - 1.5) * width, means, width, label=arm)
    ax.plot(x, [r["chance_test"][b] for b in BUCKETS], "k_", markersize=20, label="chance")
    ax.set_xticks(x, BUCKETS)
    ax.set_ylabel("test NDCG@10 (mean over seeds)")
    ax.set_title("ML-100K, items held out of training as new items")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
