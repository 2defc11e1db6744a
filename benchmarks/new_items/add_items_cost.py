"""What `recdistill add-items` costs: the command timed as a user runs it, with 1 and with N new items, so
the fixed part (process start, checkpoint and LLM load, ONNX export) and the cost per added item separate.

    python benchmarks/new_items/add_items_cost.py --model runs/<run>/checkpoints/<distill .ckpt> [--items 50] [--repeats 2]

The model must be a distilled student trained with ``distill.item_embeddings``. Writes
``<out>/add_items_cost.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository root
RESULTS = ROOT / "benchmarks" / "results"


def _csv(path: Path, n: int) -> Path:
    lines = ["title,year,genres"] + [f"A New Film Number {i},2026,Drama|Comedy" for i in range(n)]
    path.write_text("\n".join(lines) + "\n")
    return path


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", required=True)
    p.add_argument("--items", type=int, default=50)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--note", default="")
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args()

    from recdistill.engine.cpu_bf16 import model_name

    seconds = {1: [], args.items: []}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        for r in range(args.repeats):
            for n in (1, args.items):  # alternated
                start = time.perf_counter()
                subprocess.run([sys.executable, "-m", "recdistill", "add-items", args.model, str(_csv(tmp / f"{n}.csv", n)),
                                "--out", str(tmp / f"out-{n}-{r}")], check=True, capture_output=True)
                seconds[n].append(time.perf_counter() - start)
    one, many = statistics.median(seconds[1]), statistics.median(seconds[args.items])
    per_item = (many - one) / (args.items - 1)
    record = {"model": args.model, "items": args.items, "seconds": {str(k): [round(x, 2) for x in v] for k, v in seconds.items()},
              "fixed_seconds": round(one - per_item, 2), "seconds_per_item": round(per_item, 4),
              "machine": model_name(), "note": args.note, "measured_at": time.strftime("%Y-%m-%d %H:%M")}
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / "add_items_cost.json").write_text(json.dumps(record, indent=2) + "\n")
    md = ["# The cost of `recdistill add-items`", "",
          f"`recdistill add-items MODEL items.csv` as a user runs it (a new process each time), with 1 and with "
          f"{args.items} new items, alternated, {args.repeats} runs each; median seconds. Machine: {model_name()}. "
          f"{args.note}".rstrip(), "",
          "| new items | seconds (runs) | median |", "|---|---|---|"]
    for n, values in seconds.items():
        md.append(f"| {n} | {', '.join(f'{x:.1f}' for x in values)} | {statistics.median(values):.1f} |")
    md += ["", f"Fixed part (process, checkpoint and LLM load, ONNX export): about {record['fixed_seconds']:.1f} s; "
           f"each added item: **{per_item * 1000:.0f} ms** (the frozen LLM over its text)."]
    (out / "add_items_cost.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
