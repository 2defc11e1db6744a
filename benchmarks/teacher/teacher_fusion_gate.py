"""Gate (b) of issue 12: does the LLM teacher know something the student does not? The score fusion
``w * teacher + (1 - w) * student`` (each turned into log-probabilities over the user's candidates, so the
two scales meet) against the student alone, on the validation candidates of the learning curve.

The weight is chosen on validation: by two-fold cross-fitting over users (choose on one half, score the
other, and the reverse), which is the figure the gate reads, and, for reference, on all of validation at
once (in-sample, optimistic). The paired per-user difference of the fused and the student-alone NDCG@10
gets a 95 % interval. Test is never used.

    python benchmarks/teacher/teacher_fusion_gate.py --scores runs/teacher_learning_curve/val_scores_step<N>.npz \\
        --student-checkpoint <the curve's student .ckpt>

Writes ``<out>/teacher_fusion_gate.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]  # the repository root
sys.path.insert(0, str(ROOT))  # so that `benchmarks.*` imports work from any folder
RESULTS = ROOT / "benchmarks" / "results"
# Fine near 0: the teacher's summed title log-likelihoods spread over tens of nats, the student's far less, so
# a useful teacher weight can be small.
WEIGHTS = np.array([0.0, 0.001, 0.002, 0.005, 0.01, 0.02, 0.03, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.6,
                    0.7, 0.8, 0.9, 1.0])


def log_softmax(x: np.ndarray) -> np.ndarray:
    x = x - x.max(1, keepdims=True)
    return x - np.log(np.exp(x).sum(1, keepdims=True))


def ndcg10(scores: np.ndarray, target_index: np.ndarray) -> np.ndarray:
    """Per-user NDCG@10 of the target among the candidates (ties count against the target)."""
    target = scores[np.arange(len(scores)), target_index][:, None]
    rank = (scores > target).sum(1) + (scores == target).sum(1) - 1
    return np.where(rank < 10, 1.0 / np.log2(rank + 2.0), 0.0)


def hr1(scores: np.ndarray, target_index: np.ndarray) -> np.ndarray:
    target = scores[np.arange(len(scores)), target_index][:, None]
    return (((scores > target).sum(1) + (scores == target).sum(1) - 1) == 0).astype(float)


def fused(t: np.ndarray, s: np.ndarray, w: float) -> np.ndarray:
    return w * t + (1.0 - w) * s


def best_weight(t, s, target_index, users) -> float:
    means = [ndcg10(fused(t[users], s[users], w), target_index[users]).mean() for w in WEIGHTS]
    return float(WEIGHTS[int(np.argmax(means))])  # the smallest teacher weight among ties


def ci95(values: np.ndarray) -> list[float]:
    """[mean, low, high]: the 95 % t interval over users that every candidate evaluation reports."""
    from recdistill.evaluation.intervals import mean_ci95

    m, half = mean_ci95(values)
    return [m, m - half, m + half]


def student_candidate_scores(student, data, users: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """The frozen student's scores of the same candidates (the scorer every candidate evaluation uses)."""
    from recdistill.evaluation.student_scores import student_scores

    return student_scores(student, [data.history("val", int(u)) for u in users], candidates).numpy()


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--scores", required=True, help="val_scores_step<N>.npz of teacher_learning_curve.py")
    p.add_argument("--student-checkpoint", required=True)
    p.add_argument("--prepared", default=None)
    p.add_argument("--seed", type=int, default=0, help="seeds the split of users into the two folds")
    p.add_argument("--out", default=str(RESULTS))
    p.add_argument("--name", default="teacher_fusion_gate")
    args = p.parse_args(argv)

    from benchmarks.teacher.curve_train import _prepared

    from recdistill.student.checkpoint import load_student_for

    z = np.load(args.scores)
    data = _prepared(args.prepared)
    student, _ = load_student_for(args.student_checkpoint, data)
    users, cands, ti = z["users"], z["candidates"], z["target_index"]
    t = log_softmax(z["scores"].astype(np.float64))
    s = log_softmax(student_candidate_scores(student, data, users, cands).astype(np.float64))
    alone, teacher = ndcg10(s, ti), ndcg10(t, ti)

    folds = np.random.default_rng(args.seed).permutation(len(users)) % 2
    cross = np.empty(len(users))
    chosen = []
    for k in (0, 1):
        w = best_weight(t, s, ti, folds != k)          # chosen on the other fold
        chosen.append(w)
        cross[folds == k] = ndcg10(fused(t[folds == k], s[folds == k], w), ti[folds == k])
    w_all = best_weight(t, s, ti, np.ones(len(users), dtype=bool))
    in_sample = ndcg10(fused(t, s, w_all), ti)
    sweep = {float(w): float(ndcg10(fused(t, s, w), ti).mean()) for w in WEIGHTS}
    record = {
        "scores_file": str(args.scores), "student_checkpoint": args.student_checkpoint, "users": int(len(users)),
        "num_candidates": int(cands.shape[1]),
        "ndcg@10": {"student_alone": ci95(alone), "teacher_alone": ci95(teacher),
                    "fused_cross_fitted": ci95(cross), "fused_in_sample": ci95(in_sample)},
        "hr@1": {"student_alone": ci95(hr1(s, ti)), "teacher_alone": ci95(hr1(t, ti)),
                 "fused_in_sample": ci95(hr1(fused(t, s, w_all), ti))},
        "paired_gain_cross_fitted": ci95(cross - alone), "paired_gain_in_sample": ci95(in_sample - alone),
        "weights_chosen_per_fold": chosen, "weight_chosen_on_all_val": w_all, "ndcg@10_by_teacher_weight": sweep,
    }
    gain = record["paired_gain_cross_fitted"]
    record["gate_b_passed"] = bool(gain[1] > 0)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{args.name}.json").write_text(json.dumps(record, indent=2) + "\n")
    f = lambda v: f"{v[0]:.4f} [{v[1]:.4f}, {v[2]:.4f}]"  # noqa: E731
    md = [f"# Gate (b): score fusion of the CPU teacher ({Path(args.scores).stem}) and the student, validation only", "",
          f"{len(users)} validation users, cand{cands.shape[1]} (the learning curve's fixed candidates); scores "
          f"turned into log-probabilities over each user's candidates, fused as w * teacher + (1 - w) * student, "
          f"w on a grid of {len(WEIGHTS)} values from 0 to 1, fine near 0. Teacher scores: `{Path(args.scores).name}`. 95 % intervals over users.", "",
          "| arm | NDCG@10 [95 % CI] | HR@1 [95 % CI] |", "|---|---|---|",
          f"| student alone (frozen SASRec) | {f(record['ndcg@10']['student_alone'])} | {f(record['hr@1']['student_alone'])} |",
          f"| teacher alone | {f(record['ndcg@10']['teacher_alone'])} | {f(record['hr@1']['teacher_alone'])} |",
          f"| fused, w cross-fitted over two folds (w = {chosen[0]}, {chosen[1]}) | {f(record['ndcg@10']['fused_cross_fitted'])} | |",
          f"| fused, w chosen on all val (w = {w_all}; in-sample, optimistic) | {f(record['ndcg@10']['fused_in_sample'])} "
          f"| {f(record['hr@1']['fused_in_sample'])} |", "",
          f"Paired gain of fused over student alone (NDCG@10): cross-fitted {f(gain)}; in-sample "
          f"{f(record['paired_gain_in_sample'])}.", "",
          f"**Gate (b) {'passed' if record['gate_b_passed'] else 'not passed'}**: "
          + ("the cross-fitted gain's 95 % interval lies above 0." if record["gate_b_passed"]
             else "the cross-fitted gain's 95 % interval does not lie above 0."), "",
          "NDCG@10 by teacher weight (all val): " + ", ".join(f"{w:g}: {v:.4f}" for w, v in sweep.items())]
    (out / f"{args.name}.md").write_text("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
