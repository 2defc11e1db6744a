"""The CPU teacher's learning curve: train SmolLM2 with iLoRA for a wall-clock budget and evaluate it at
fixed steps on fixed validation candidates, beside chance, the untrained teacher (step 0) and the frozen
SASRec on exactly the same candidates.

    python benchmarks/teacher/teacher_learning_curve.py --student-checkpoint runs/<student>/checkpoints/<best>.ckpt \\
        [--budget-minutes 60] [--max-steps 400] [--eval-steps 0,100,200,400] [--val-users 304]

Training time excludes evaluation and checkpoint writing (both are timed and reported apart). The run
stops at ``--max-steps`` (the cosine schedule's length) or when the training budget is spent, whichever
comes first, and then evaluates once more if the last step was not an evaluation step. Killed, it resumes
from ``<work>/curve_state.pt`` with the same data order, schedule and random state (a finished run given a
larger ``--budget-minutes`` goes on from its end the same way); the results files are rewritten after every
evaluation point: ``<out>/<name>.json``, ``.md`` and ``.png``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository root
sys.path.insert(0, str(ROOT))  # so that `benchmarks.*` imports work from any folder
RESULTS = ROOT / "benchmarks" / "results"


def parse(argv=None):
    from benchmarks.teacher.curve_train import CurveSettings

    d = CurveSettings()
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--student-checkpoint", required=True)
    p.add_argument("--llm", default=d.llm)
    p.add_argument("--prepared", default=None)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--budget-minutes", type=float, default=d.budget_minutes, help="training time, evaluation excluded")
    p.add_argument("--max-steps", type=int, default=d.max_steps)
    p.add_argument("--eval-steps", default=",".join(map(str, d.eval_steps)))
    p.add_argument("--val-users", type=int, default=d.val_users)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--lr", type=float, default=d.lr)
    p.add_argument("--scheduler", default=d.scheduler, choices=("cosine", "constant"))
    p.add_argument("--warmup-ratio", type=float, default=d.warmup_ratio)
    p.add_argument("--candidates", default=d.candidates, choices=("titles", "tokens", "none"))
    p.add_argument("--length-bucket-batches", type=int, default=d.length_bucket_batches)
    p.add_argument("--top-layers", type=int, default=None)
    p.add_argument("--scaling", default=d.scaling, choices=("ilora", "standard"))
    p.add_argument("--train-positions", default=d.train_positions, choices=("all", "last"))
    p.add_argument("--last-n", type=int, default=d.last_n)
    p.add_argument("--threads", type=int, default=d.threads)
    p.add_argument("--precision", default=d.precision, choices=("fp32", "bf16-mixed", "bf16-base"),
                   help="bf16-base: the frozen base in bf16, adapters fp32, under autocast (for CPUs with fast bf16)")
    p.add_argument("--checkpoint-every", type=int, default=d.checkpoint_every)
    p.add_argument("--work", default="runs/teacher_learning_curve", help="checkpoint, adapter and score files")
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument("--name", default="teacher_learning_curve")
    p.add_argument("--note", default="", help="a line for the results (e.g. what else ran on the machine)")
    p.add_argument("--stop-after", type=int, default=None,
                   help="leave after this many training steps in this process, as a kill would (for tests)")
    args = p.parse_args(argv)
    settings = CurveSettings(
        llm=args.llm, student_checkpoint=str(Path(args.student_checkpoint).expanduser().resolve()),
        prepared=args.prepared, seed=args.seed, budget_minutes=args.budget_minutes, max_steps=args.max_steps,
        eval_steps=sorted({int(x) for x in args.eval_steps.split(",") if x.strip()}), val_users=args.val_users,
        batch_size=args.batch_size, lr=args.lr, scheduler=args.scheduler, warmup_ratio=args.warmup_ratio,
        candidates=args.candidates,
        length_bucket_batches=args.length_bucket_batches, top_layers=args.top_layers, scaling=args.scaling,
        train_positions=args.train_positions, last_n=args.last_n, threads=args.threads, precision=args.precision,
        checkpoint_every=args.checkpoint_every)
    return args, settings


def per_user_ranking(ranks) -> dict:
    """HR@1 and NDCG@10 of each user from the target's 0-based rank among the candidates."""
    import numpy as np

    ranks = np.asarray(ranks, dtype=np.float64)
    return {"hr@1": (ranks < 1).astype(np.float64), "ndcg@10": np.where(ranks < 10, 1.0 / np.log2(ranks + 2.0), 0.0)}


def summarize_over_users(ranks) -> dict[str, dict[str, float]]:
    """One candidate draw, users as the units: ``{metric: {mean, ci95_low, ci95_high, n}}`` for HR@1 and
    NDCG@10 (the t interval of ``recdistill.evaluation.intervals.mean_ci95``)."""
    from recdistill.evaluation.intervals import mean_ci95

    out = {}
    for name, values in per_user_ranking(ranks).items():
        mean, half = mean_ci95(values)
        out[name] = {"mean": mean, "ci95_low": mean - half, "ci95_high": mean + half, "n": int(len(values))}
    return out


def main(argv=None) -> int:
    args, s = parse(argv)
    import numpy as np
    from benchmarks.teacher.curve_report import write_results
    from benchmarks.teacher.curve_train import CurveRun, timed
    from benchmarks.common.machine import load_average, matmul_flops
    from benchmarks.teacher.teacher_common import cache_dir

    from recdistill.evaluation.candidates import chance_metrics

    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    state_path = work / "curve_state.pt"
    run = CurveRun(s, cache_dir())
    progress = {"step": 0, "train_seconds": 0.0, "eval_seconds": 0.0, "checkpoint_seconds": 0.0, "samples": 0,
                "real_tokens": 0, "losses": [], "points": [], "resumed": 0, "finished": False,
                "machine": {"matmul_gflops_at_start": round(matmul_flops() / 1e9, 1), "load_average_at_start": load_average()}}
    if state_path.exists():
        progress = run.load(state_path)
        progress["resumed"] += 1
        if progress["finished"] and progress.get("stopped_by") == "budget" and progress["train_seconds"] < 60.0 * s.budget_minutes:
            progress["finished"] = False  # a larger budget extends a finished curve from its last checkpoint
        print(f"resumed from {state_path} at step {progress['step']} "
              f"({progress['train_seconds'] / 60:.1f} min trained)", flush=True)
    sasrec = summarize_over_users(run.val_ranks(run.student_val_scores()))
    chance = {name.split("_", 1)[1]: v for name, v in chance_metrics(s.num_candidates).items()}  # cand20_hr@1 -> hr@1
    baselines = {"chance": chance, "sasrec_frozen": sasrec}
    budget = 60.0 * s.budget_minutes

    def evaluate(step: int) -> None:
        scores, seconds = timed(run.teacher_val_scores)
        ranks = run.val_ranks(scores)
        sets = run.val_sets
        np.savez(work / f"val_scores_step{step}.npz", scores=scores.numpy(), candidates=sets.candidates,
                 target_index=sets.target_index, users=sets.users)
        losses = progress["losses"]
        since = [x for st, x in losses if st > (progress["points"][-1]["step"] if progress["points"] else -1)]
        _, epoch = run.batch_at(max(step - 1, 0)) if step else (None, 0.0)
        progress["eval_seconds"] += seconds
        progress["points"].append({
            "step": step, "epoch": round(epoch, 3) if step else 0.0, "samples": progress["samples"],
            "train_minutes": round(progress["train_seconds"] / 60, 2), "eval_seconds": round(seconds, 1),
            "train_loss_since_last_point": float(np.mean(since)) if since else None,
            "wall_clock": time.strftime("%Y-%m-%d %H:%M:%S"), "load_average": load_average(),
            "metrics": summarize_over_users(ranks)})
        p = progress["points"][-1]
        print(f"step {step}: val cand{s.num_candidates} NDCG@10 {p['metrics']['ndcg@10']['mean']:.4f} "
              f"HR@1 {p['metrics']['hr@1']['mean']:.4f} ({seconds:.0f} s to evaluate)", flush=True)

    def checkpoint() -> None:
        _, seconds = timed(run.save, state_path, progress)
        progress["checkpoint_seconds"] += seconds

    def publish() -> None:
        write_results(Path(args.out), args.name, s, progress, baselines, args.note)

    done_steps = {p["step"] for p in progress["points"]}
    steps_here = 0
    while not progress["finished"]:
        step = progress["step"]
        if step in s.eval_steps and step not in done_steps:
            evaluate(step)
            done_steps.add(step)
            checkpoint()
            publish()
        if step >= s.max_steps or progress["train_seconds"] >= budget:
            if step not in done_steps:
                evaluate(step)
                done_steps.add(step)
            progress["finished"] = True
            progress["stopped_by"] = "max_steps" if step >= s.max_steps else "budget"
            checkpoint()
            publish()
            break
        if args.stop_after is not None and steps_here >= args.stop_after:
            print(f"leaving after {steps_here} steps (--stop-after), as a kill would", flush=True)
            return 3
        (loss, tokens, samples), seconds = timed(run.train_step, step)
        progress["train_seconds"] += seconds
        progress["samples"] += samples
        progress["real_tokens"] += tokens
        progress["losses"].append([step + 1, loss])
        progress["step"] = step + 1
        steps_here += 1
        if progress["step"] % 10 == 0:
            print(f"step {progress['step']}: loss {loss:.3f}, {progress['train_seconds'] / 60:.1f} min trained, "
                  f"{tokens / seconds:.0f} tokens/s", flush=True)
        if progress["step"] % s.checkpoint_every == 0:
            checkpoint()
    _save_adapter(run, work / "adapter", s)
    print(json.dumps({k: progress[k] for k in ("step", "train_seconds", "eval_seconds", "stopped_by")}), flush=True)
    return 0


def _save_adapter(run, folder: Path, s) -> None:
    """The trained teacher as `recdistill train teacher` saves it, so `recdistill export` can read it."""
    from recdistill.teacher.checkpoint import save_adapter

    teacher_cfg = {"mode": "ilora", "prompt": {"file": None, "history_items": s.history_items,
                                               "num_candidates": s.num_candidates,
                                               "candidates": s.candidates, "max_tokens": None, "eval_template": 0,
                                               "seed": s.seed}}
    save_adapter(run.teacher, folder, {
        "llm": run.llm_cfg.to_dict(), "teacher": teacher_cfg,
        "student_checkpoint": s.student_checkpoint,
        "dataset": {"name": run.data.name, "fingerprint": run.data.fingerprint, "num_items": run.data.num_items},
        "best_checkpoint": None, "trained_by": "benchmarks/teacher/teacher_learning_curve.py"})


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    raise SystemExit(main())
