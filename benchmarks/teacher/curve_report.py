"""The learning curve's results files: JSON (everything), a markdown table and a PNG, each written to a
temporary name and renamed, so a kill never leaves a half-written file."""

from __future__ import annotations

import json
import os
from pathlib import Path


def _interval(m: dict) -> str:
    return f"{m['mean']:.4f} [{m['ci95_low']:.4f}, {m['ci95_high']:.4f}]"


def _write(path: Path, data: bytes | str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data.encode() if isinstance(data, str) else data)
    os.replace(tmp, path)


def markdown(s, progress: dict, baselines: dict, note: str) -> str:
    n = s.num_candidates
    users = progress["points"][0]["metrics"]["ndcg@10"]["n"] if progress["points"] else s.val_users
    lines = [f"# CPU teacher learning curve ({s.llm}, ML-100K, seed {s.seed})", "",
             f"Validation cand{n} (target + {n - 1} uniform items the user never touched, drawn once per user by "
             f"recdistill.evaluation.candidates with seed {s.seed}, the drawer `eval teacher` / `eval student` use), "
             f"{users} users, 95 % t intervals over users. Teacher: iLoRA (r=8, K=4, scaling "
             f"{s.scaling}) with a linear gate over the student's whole history and no curriculum (every prompt "
             f"hybrid from the first step), candidates listed as `{s.candidates}`, length buckets of {s.length_bucket_batches} "
             f"batches, adapters in {'every layer' if s.top_layers is None else f'the top {s.top_layers} layers'}; "
             f"batch {s.batch_size}, lr {s.lr} {s.scheduler} over {s.max_steps} steps (warm-up {s.warmup_ratio}), training "
             f"samples from train_positions={s.train_positions}" + (f" (last {s.last_n})" if s.train_positions == "last" else "")
             + f"; {s.threads} threads; budget {s.budget_minutes:g} min of training (evaluation and checkpoints excluded).",
             "", "| point | step | epoch | samples | train min | HR@1 [95 % CI] | NDCG@10 [95 % CI] | train loss | eval s |",
             "|---|---|---|---|---|---|---|---|---|",
             f"| chance | | | | | {baselines['chance']['hr@1']:.4f} | {baselines['chance']['ndcg@10']:.4f} | | |",
             f"| frozen SASRec (the teacher's student) | | | | | {_interval(baselines['sasrec_frozen']['hr@1'])} | "
             f"{_interval(baselines['sasrec_frozen']['ndcg@10'])} | | |"]
    for p in progress["points"]:
        name = "untrained teacher" if p["step"] == 0 else "teacher"
        loss = "" if p["train_loss_since_last_point"] is None else f"{p['train_loss_since_last_point']:.3f}"
        lines.append(f"| {name} | {p['step']} | {p['epoch']:.2f} | {p['samples']} | {p['train_minutes']:.1f} | "
                     f"{_interval(p['metrics']['hr@1'])} | {_interval(p['metrics']['ndcg@10'])} | {loss} | "
                     f"{p['eval_seconds']:.0f} |")
    status = (f"finished ({progress.get('stopped_by')})" if progress["finished"]
              else f"in progress: step {progress['step']}, {progress['train_seconds'] / 60:.1f} min trained")
    tokens = progress["real_tokens"] / progress["train_seconds"] if progress["train_seconds"] else 0.0
    lines += ["", f"Status: {status}; {tokens:.0f} real tokens/s in training on average; resumed "
              f"{progress['resumed']} time(s); evaluation took {progress['eval_seconds'] / 60:.1f} min in all.",
              f"Machine: 2-core CPU VM, no GPU (fp32 matmul "
              f"{progress['machine']['matmul_gflops_at_start']} GFLOP/s and load average "
              f"{progress['machine']['load_average_at_start']} at start; each point's load average is in the JSON)."]
    if note:
        lines += ["", note]
    return "\n".join(lines) + "\n"


def plot(path: Path, s, progress: dict, baselines: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4))
    pts = progress["points"]
    if pts:
        x = [p["train_minutes"] for p in pts]
        y = [p["metrics"]["ndcg@10"]["mean"] for p in pts]
        err = [[p["metrics"]["ndcg@10"]["mean"] - p["metrics"]["ndcg@10"]["ci95_low"] for p in pts],
               [p["metrics"]["ndcg@10"]["ci95_high"] - p["metrics"]["ndcg@10"]["mean"] for p in pts]]
        ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=f"teacher ({s.llm}, iLoRA)")
    sas = baselines["sasrec_frozen"]["ndcg@10"]
    ax.axhline(sas["mean"], color="tab:green", linestyle="--", label="frozen SASRec")
    ax.axhspan(sas["ci95_low"], sas["ci95_high"], color="tab:green", alpha=0.15)
    ax.axhline(baselines["chance"]["ndcg@10"], color="grey", linestyle=":", label="chance")
    ax.set_xlabel("training minutes (2 CPU cores; evaluation excluded)")
    ax.set_ylabel(f"val cand{s.num_candidates} NDCG@10")
    ax.set_ylim(0, 1)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    tmp = path.with_name(path.name + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    os.replace(tmp, path)


def write_results(out: Path, name: str, s, progress: dict, baselines: dict, note: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    record = {"settings": s.to_dict(), "baselines": baselines, "note": note,
              "machine_description": "2-core CPU VM, no GPU (what else ran: the note and each point's load average)",
              **{k: v for k, v in progress.items() if k != "losses"},
              "train_loss_by_step": progress["losses"]}
    _write(out / f"{name}.json", json.dumps(record, indent=2) + "\n")
    _write(out / f"{name}.md", markdown(s, progress, baselines, note))
    plot(out / f"{name}.png", s, progress, baselines)


def rewrite_from_json(path: Path) -> None:
    """Rewrite a finished curve's markdown and PNG from its JSON (after a change to this report's text)."""
    from benchmarks.teacher.curve_train import CurveSettings

    record = json.loads(Path(path).read_text())
    s = CurveSettings(**record["settings"])
    progress = {k: v for k, v in record.items() if k not in ("settings", "baselines", "note", "machine_description",
                                                            "train_loss_by_step")}
    progress["losses"] = record["train_loss_by_step"]
    write_results(Path(path).parent, Path(path).stem, s, progress, record["baselines"], record["note"])


if __name__ == "__main__":
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))  # the repository root: `benchmarks.*` imports
    rewrite_from_json(Path(sys.argv[1]))
