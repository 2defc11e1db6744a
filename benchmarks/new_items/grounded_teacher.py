"""The LLM teacher over the whole catalogue (BIGRec's grounding) against today's candidate scoring, on the
same validation users: cost per user and whole-catalogue NDCG@10 per popularity bucket and on new items,
beside the frozen student the teacher reads.

* ``grounded`` (``teacher.export.ranking=grounded``): one greedy answer per user, every unseen item ranked
  by the L2 distance of its title embedding to the answer's;
* ``likelihood`` (the default export): the student's top-50 re-ranked by title likelihood; it can only
  name items the student already ranks in its top 50, so its whole-catalogue ranking is the student's
  beyond them (what the export hands to distillation).

    python benchmarks/new_items/grounded_teacher.py --adapter <teacher run>/adapter --prepared <folder> [--users 120]

Writes ``<out>/grounded_teacher.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository root
RESULTS = ROOT / "benchmarks" / "results"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--adapter", required=True)
    p.add_argument("--prepared", required=True)
    p.add_argument("--users", type=int, default=120, help="validation users: the first N by id")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--max-new-tokens", type=int, default=24)
    p.add_argument("--student-top", type=int, default=50, help="candidates of the likelihood arm")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--note", default="")
    p.add_argument("--out", default=str(RESULTS))
    args = p.parse_args()

    import numpy as np
    import torch

    from recdistill.config import compose
    from recdistill.data.prepared import load_prepared
    from recdistill.evaluation import metrics_from_ranks, rank_of_targets
    from recdistill.evaluation.buckets import bucket_metrics
    from recdistill.evaluation.chance import full_candidates
    from recdistill.recipes.export import llm_ranker

    torch.set_num_threads(args.threads)
    data = load_prepared(Path(args.prepared))
    users = data.users()[: args.users]
    histories = [data.history("val", int(u)) for u in users]
    targets = torch.as_tensor([data.target("val", int(u)) for u in users])
    common = [f"prepared={args.prepared}", f"teacher.adapter={args.adapter}", "export.progress_bar=false",
              f"teacher.export.max_new_tokens={args.max_new_tokens}"]
    grounded = llm_ranker(compose("export", common + ["teacher.export.ranking=grounded"]), data)
    likelihood = llm_ranker(compose("export", common), data)
    student = grounded.teacher.student.eval()
    seen_rows = torch.as_tensor(np.concatenate([np.full(len(h), i) for i, h in enumerate(histories)]))
    seen_cols = torch.as_tensor(np.concatenate(histories))

    def student_scores(rows) -> torch.Tensor:
        from recdistill.data.sequences import left_pad_batch

        with torch.no_grad():
            seq = left_pad_batch([histories[i] for i in rows], student.max_len)
            return student.score_all(student(seq)[:, -1, :]).float()

    n = len(users)
    all_items = np.arange(1, data.num_items + 1)
    out = {"grounded": torch.full((n, data.num_items + 1), float("-inf")), "likelihood": None}
    seconds = {"grounded": 0.0, "likelihood": 0.0}
    s_all = torch.cat([student_scores(list(range(i, min(i + 64, n)))) for i in range(0, n, 64)])
    lik = s_all.clone()
    for start in range(0, n, args.batch_size):
        rows = list(range(start, min(start + args.batch_size, n)))
        hist = [histories[i] for i in rows]
        s = s_all[rows].clone()
        for j, h in enumerate(hist):
            s[j, torch.as_tensor(h)] = float("-inf")
        top = s.topk(args.student_top, dim=1).indices.numpy()
        # grounded: every unseen item is a candidate; the prompt lists the student's top 20 first, as the
        # likelihood arm's prompt does (the prompts the teacher was trained on list candidates)
        sets = [np.concatenate([top[j], np.setdiff1d(np.setdiff1d(all_items, h), top[j])]) for j, h in enumerate(hist)]
        t0 = time.perf_counter()
        batch = grounded._batch(hist, [np.asarray(s) for s in sets])
        scores = grounded._grounded_scores(batch)
        seconds["grounded"] += time.perf_counter() - t0
        for j, i in enumerate(rows):
            out["grounded"][i, torch.as_tensor(sets[j])] = scores[j, : len(sets[j])]
        # likelihood: the student's top-M re-ranked, placed above the rest in the teacher's order
        t0 = time.perf_counter()
        ids, values = likelihood.rank(hist, top, args.student_top)
        seconds["likelihood"] += time.perf_counter() - t0
        for j, i in enumerate(rows):
            offset = float(lik[i].max()) + 1.0 - float(values[j].min())  # above every student score
            lik[i, torch.as_tensor(ids[j])] = torch.as_tensor(values[j]) + offset
        print(f"{rows[-1] + 1}/{n} users", flush=True)
    out["likelihood"] = lik
    out["student"] = s_all
    record = {"users": n, "new_users": int((data.item_train_counts[targets.numpy()] == 0).sum()), "arms": {},
              "seconds_per_user": {k: round(v / n, 3) for k, v in seconds.items()},
              "settings": vars(args), "machine": platform.processor(), "measured_at": time.strftime("%Y-%m-%d %H:%M")}
    for arm, scores in out.items():
        scores = scores.clone()
        scores[:, 0] = float("-inf")
        ranks = rank_of_targets(scores, targets, seen_rows, seen_cols)
        cands = full_candidates(data.num_items, targets, seen_rows, seen_cols)
        m = {**metrics_from_ranks(ranks, [10], "val/"), **bucket_metrics(ranks, targets, cands, data.item_train_counts, "val")}
        record["arms"][arm] = {k: round(v, 5) for k, v in m.items()}
    out_dir = Path(args.out)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "grounded_teacher.json").write_text(json.dumps(record, indent=2) + "\n")
    buckets = ["new", "tail", "torso", "head", "warm"]
    lines = ["# The teacher over the whole catalogue (grounded) against candidate re-ranking", "",
             f"{n} validation users (the first by id; {record['new_users']} with a new target), adapter "
             f"`{args.adapter}`, {args.threads} threads. {args.note}".rstrip(), "",
             "| arm | s per user | NDCG@10 | " + " | ".join(buckets) + " |", "|---|---|---|" + "---|" * len(buckets)]
    for arm, m in record["arms"].items():
        cost = record["seconds_per_user"].get(arm, 0.0)
        lines.append(f"| {arm} | {cost:.2f} | {m['val/ndcg@10']:.4f} | " +
                     " | ".join(f"{m.get(f'val/{b}_ndcg@10', float('nan')):.4f} ({m.get(f'val/{b}_users', 0):.0f})"
                                for b in buckets) + " |")
    lines += ["", "Bucket cells: NDCG@10 (users). `student`: the frozen student alone (no teacher cost). "
              "`likelihood`: the student's top-" + str(args.student_top) + " in the teacher's order, the rest in "
              "the student's."]
    (out_dir / "grounded_teacher.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
