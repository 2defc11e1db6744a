"""RecBole's SASRec, GRU4Rec and Caser on recdistill's ML-100K split and protocol (issue 24): a peer
implementation's figures beside our students' (benchmarks/results/student_quality_*.md).

The split is ours: recdistill's prepared ML-100K (train / val / test per user) is written out as a RecBole
atomic file whose timestamps are each user's positions 0..n-1 (ML-100K has many same-second ties, which
RecBole's time sort would order differently), so RecBole's leave-one-out split ('LS' valid_and_test, order
TO) gives our val and test targets and histories; the script checks this for every user before training.
The protocol is ours: full-catalogue ranking with the user's seen items excluded (never the target).
RecBole does not exclude them for sequential models (its FullSortEvalDataLoader passes no history index),
so ``PeerTrainer`` masks them; selection on val NDCG@10 with early stopping (``--patience`` epochs without
a better one); the best checkpoint evaluated once on test. RecBole's own metric code gives the figures;
NDCG@10 / HR@10 are also recomputed from the same scores with recdistill's rule (ties count against the
target) as a check. The settings follow src/recdistill/config/conf/student/*.yaml and student.yaml (see
``SHARED`` and ``MODELS``; what cannot match is listed in the results file).

It runs in its own virtualenv, not the project's. RecBole 1.2.1 imports ray 2.6.3, which needs
``pkg_resources`` (gone from setuptools >= 81) and ``np.bool8`` (gone from numpy 2); pandas 3 and pyarrow 26
need numpy 2, so both are held back too:

    python3.11 -m venv .venv-recbole
    .venv-recbole/bin/pip install torch==2.13.0 recbole==1.2.1 "numpy<2" "pandas<3" "pyarrow<20" "setuptools<81"
    .venv/bin/python -m recdistill data prepare dataset=ml-100k      # the project's venv: data/ml-100k
    OMP_NUM_THREADS=1 .venv-recbole/bin/python benchmarks/student/recbole_peers.py \
        [--models SASRec GRU4Rec Caser] [--seeds 0 1 2] [--batch-size 5120 --epochs 200 --patience 10]

The defaults are our budget (batch 5120 = our 19 steps per epoch, 200 epochs, patience 10). RecBole trains
every prefix as its own 50-item sample, about 40x the positions of our windows per epoch, so that budget
takes well over 10 hours for 9 runs on the 2-core VM; the recorded runs used ``--batch-size 256 --epochs 15
--patience 3``, seed 0 first and seeds 1 and 2 in a later call (its results file says how each ran). Each run's record goes to
``<work>/runs/<model>_seed<k>_e<epochs>_b<batch>_p<patience>.json``; a rerun skips finished runs (resume),
and the results gather every finished run of the same budget, so seeds can be added by later calls.
Writes ``benchmarks/results/recbole_peers.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT), str(ROOT / "src")]  # recdistill's prepared-data reader only (numpy, pandas, pyarrow)
from recdistill.data.prepared import load_prepared  # noqa: E402

from recbole.config import Config  # noqa: E402
from recbole.data import create_dataset, data_preparation  # noqa: E402
from recbole.trainer import Trainer  # noqa: E402
from recbole.utils import get_model, init_seed  # noqa: E402

DATASET = "ml100k_recdistill"
OURS = {"SASRec": "student_quality_fused.json", "GRU4Rec": "student_quality_gru4rec.json",
        "Caser": "student_quality_caser.json"}
# student.yaml: lr 0.001, Adam(W) betas (0.9, 0.98), no weight decay, 200 epochs, patience 10 on val NDCG@10.
# Our batch is 128 windows of up to 50 targets: 19 steps of ~5,114 targets per epoch; RecBole's samples are
# one target each, so 5,120 per batch gives the same 19 steps over the same 97,171 targets.
SHARED = {"train_batch_size": 5120, "learning_rate": 0.001, "weight_decay": 0.0, "epochs": 200,
          "stopping_step": 9,  # RecBole stops after stopping_step + 1 epochs without a better score
          "eval_step": 1, "valid_metric": "NDCG@10", "metrics": ["NDCG", "Hit"], "topk": [10],
          "train_neg_sample_args": None, "loss_type": "CE", "eval_batch_size": 4096,
          "eval_args": {"split": {"LS": "valid_and_test"}, "order": "TO", "group_by": "user", "mode": "full"}}
MODELS = {  # conf/student/<model>.yaml in RecBole's names
    "SASRec": {"MAX_ITEM_LIST_LENGTH": 50, "hidden_size": 64, "inner_size": 64, "n_layers": 2, "n_heads": 1,
               "hidden_dropout_prob": 0.2, "attn_dropout_prob": 0.2, "hidden_act": "gelu"},
    "GRU4Rec": {"MAX_ITEM_LIST_LENGTH": 50, "embedding_size": 64, "hidden_size": 64, "num_layers": 1,
                "dropout_prob": 0.1},
    "Caser": {"MAX_ITEM_LIST_LENGTH": 10, "embedding_size": 64, "nh": 16, "nv": 1, "dropout_prob": 0.1},
}
BETAS = (0.9, 0.98)
DIFFERENCES = [
    "Training samples: RecBole trains on every prefix of a user's training sequence as its own sample (the "
    "loss on its last position only); ours on windows of up to 50 items with the loss at every position. "
    "Same 97,171 targets per epoch; a batch of 5,120 samples gives our 19 steps per epoch (128 windows), "
    "a smaller one more steps per epoch.",
    "Learning rate: RecBole keeps it constant; ours decays by a cosine over 200 epochs (no warm-up). Adam "
    "with betas (0.9, 0.98) in both (set here; RecBole's default is 0.999); no weight decay.",
    "SASRec: RecBole's blocks are post-LN (ours pre-LN with a final norm), its initialisation normal(0, 0.02) "
    "(ours Xavier), its item embeddings shared with the output layer as ours.",
    "GRU4Rec: RecBole puts a linear layer (hidden to embedding) between the GRU and the item table; ours scores "
    "the GRU output against the item table directly.",
    "Caser: RecBole's is the paper's (a user embedding, horizontal filters of every height 1..L with L = 10 "
    "here, nh = 16 each, nv = 1, L2 reg_weight 1e-4); ours has no user embedding and heights 2, 3, 4 "
    "(DLLM2Rec's code), and trains on every position of a 50-item window.",
    "Seen items: RecBole does not exclude them for sequential models; the exclusion here is ours (the whole "
    "history, train for val and train + val for test, never the target).",
    "Ties: RecBole's metrics take torch.topk (ties broken arbitrarily), ours count ties against the target; "
    "both are reported from the same scores.",
    "Early stopping: RecBole counts a score equal to the best as better; Lightning's needs a strictly better one.",
]


def export(data, folder: Path) -> None:
    """Our split as ``<folder>/<DATASET>/<DATASET>.inter``: each user's train items, then the val target,
    then the test target, at timestamps 0..n-1, so RecBole's time order is ours exactly."""
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    for u in data.users():
        seq = [*data.train[u].tolist(), int(data.val_target[u]), int(data.test_target[u])]
        lines += [f"{u}\t{item}\t{t}" for t, item in enumerate(seq)]
    (folder / DATASET).mkdir(parents=True, exist_ok=True)
    (folder / DATASET / f"{DATASET}.inter").write_text("\n".join(lines) + "\n")


def check_split(data, dataset, train, valid, test, max_len: int) -> dict:
    """RecBole's val and test rows must be ours: same users, targets and (last max_len) histories."""
    uid, iid = dataset.uid_field, dataset.iid_field
    assert len(train._dataset) == sum(len(data.train[u]) - 1 for u in data.users()), "training samples differ"
    for split, loader in (("val", valid), ("test", test)):
        feat = loader._dataset.inter_feat
        users = dataset.id2token(uid, feat[uid].numpy()).astype(int)
        assert sorted(users.tolist()) == data.users().tolist(), f"{split}: users differ"
        targets = dataset.id2token(iid, feat[iid].numpy()).astype(int)
        assert np.array_equal(targets, data.val_target[users] if split == "val" else data.test_target[users]), \
            f"{split}: targets differ"
        lists, lengths = feat[iid + "_list"].numpy(), feat["item_length"].numpy()
        for row, u in enumerate(users):
            history = dataset.id2token(iid, lists[row, :lengths[row]]).astype(int)
            assert np.array_equal(history, data.history(split, u)[-max_len:]), f"{split}: history of user {u} differs"
    return {"users": int(data.num_users), "val_and_test_targets_equal": True, "histories_equal": True,
            "training_samples": len(train._dataset)}


def seen_items(data, dataset, split: str) -> tuple[np.ndarray, np.ndarray]:
    """Per RecBole user id, the RecBole ids of the items in the user's history before ``split``'s target
    (compressed rows: indptr, indices)."""
    sets = [np.zeros(0, np.int64)] * dataset.user_num
    for token in data.users():
        sets[int(dataset.token2id(dataset.uid_field, str(token)))] = dataset.token2id(
            dataset.iid_field, data.history(split, token).astype(str)).astype(np.int64)
    indptr = np.r_[0, np.cumsum([len(s) for s in sets])]
    return indptr, np.concatenate(sets)


class PeerTrainer(Trainer):
    """RecBole's Trainer with our seen-item exclusion, Adam's betas as ours, and the best epoch recorded."""

    def __init__(self, config, model, seen: dict):
        super().__init__(config, model)
        self.seen, self.split, self.ranks, self.best_epoch = seen, "val", [], None

    def _build_optimizer(self, **kwargs):
        return torch.optim.Adam(self.model.parameters(), lr=self.learning_rate, weight_decay=self.weight_decay,
                                betas=BETAS)

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        self.best_epoch = epoch + 1  # 1-based, as our runs' best_epoch counts
        super()._save_checkpoint(epoch, verbose=verbose, **kwargs)

    def _full_sort_batch_eval(self, batched_data):
        interaction, scores, positive_u, positive_i = super()._full_sort_batch_eval(batched_data)
        indptr, indices = self.seen[self.split]
        users = interaction[self.config["USER_ID_FIELD"]].cpu().numpy()
        counts = indptr[users + 1] - indptr[users]
        rows = np.repeat(np.arange(len(users)), counts)
        cols = indices[np.repeat(indptr[users], counts) + np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)]
        target = scores[positive_u, positive_i].clone()
        scores[torch.from_numpy(rows), torch.from_numpy(cols)] = -np.inf
        scores[positive_u, positive_i] = target  # the target is never excluded
        self.ranks.append(((scores >= target[:, None]).sum(1) - 1).cpu())  # recdistill's rank: ties count against
        return interaction, scores, positive_u, positive_i

    def evaluate(self, eval_data, load_best_model=True, **kwargs):
        if load_best_model:  # RecBole's own torch.load fails under torch >= 2.6's weights_only default
            checkpoint = torch.load(self.saved_model_file, map_location=self.device, weights_only=False)
            self.model.load_state_dict(checkpoint["state_dict"])
            self.model.load_other_parameter(checkpoint.get("other_parameter"))
        self.ranks = []
        result = dict(super().evaluate(eval_data, load_best_model=False, **kwargs))
        ranks = torch.cat(self.ranks).double()
        hit = (ranks < 10).double()
        result.update({"ours_ndcg@10": float((hit / torch.log2(ranks + 2)).mean()), "ours_hr@10": float(hit.mean())})
        return result


def run_one(data, model_name: str, seed: int, work: Path, budget: dict) -> dict:
    settings = {**SHARED, **MODELS[model_name], **budget, "seed": seed, "reproducibility": True,
                "data_path": str(work / "atomic"), "checkpoint_dir": str(work / "saved" / f"{model_name}_seed{seed}"),
                "use_gpu": False, "show_progress": False, "state": "ERROR", "worker": 0,
                "load_col": {"inter": ["user_id", "item_id", "timestamp"]}}
    config = Config(model=model_name, dataset=DATASET, config_dict=settings)
    init_seed(seed, True)
    dataset = create_dataset(config)
    train, valid, test = data_preparation(config, dataset)
    split_check = check_split(data, dataset, train, valid, test, settings["MAX_ITEM_LIST_LENGTH"])
    seen = {split: seen_items(data, dataset, split) for split in ("val", "test")}
    init_seed(seed, True)  # as RecBole's run_recbole: seeded again before the model is built
    model = get_model(model_name)(config, train._dataset).to(config["device"])
    trainer = PeerTrainer(config, model, seen)
    started = time.time()

    def progress(epoch, score):
        print(f"  {model_name} seed {seed} epoch {epoch + 1}: val NDCG@10 {score:.4f} "
              f"({time.time() - started:.0f} s)", flush=True)

    trainer.fit(train, valid, verbose=False, saved=True, show_progress=False, callback_fn=progress)
    epochs_trained = len(trainer.train_loss_dict)
    trainer.split = "val"
    val = trainer.evaluate(valid, load_best_model=True)
    trainer.split = "test"
    test_result = trainer.evaluate(test, load_best_model=True)
    wall = time.time() - started
    return {"model": model_name, "seed": seed, "wall_seconds": round(wall, 1),
            "best_epoch": trainer.best_epoch, "epochs_trained": epochs_trained,
            "seconds_per_epoch": round(wall / max(epochs_trained, 1), 1),
            "val/ndcg@10": val["ndcg@10"], "val/hr@10": val["hit@10"],
            "test/ndcg@10": test_result["ndcg@10"], "test/hr@10": test_result["hit@10"],
            "val/ndcg@10_ours_rule": val["ours_ndcg@10"], "val/hr@10_ours_rule": val["ours_hr@10"],
            "test/ndcg@10_ours_rule": test_result["ours_ndcg@10"], "test/hr@10_ours_rule": test_result["ours_hr@10"],
            "parameters": sum(p.numel() for p in model.parameters()), "split_check": split_check,
            "settings": {k: v for k, v in settings.items() if k not in ("data_path", "checkpoint_dir")}}


def mean_ci(values: list[float]) -> dict:
    """Mean, sample sd and the t-based 95 % interval (recdistill.report.aggregate's rule)."""
    from scipy import stats

    n, mean = len(values), float(np.mean(values))
    if n < 2:
        return {"mean": mean, "sd": None, "ci95": None, "n": n, "text": f"{mean:.4f} (one seed)"}
    sd = float(np.std(values, ddof=1))
    half = float(stats.t.ppf(0.975, n - 1) * sd / math.sqrt(n))
    return {"mean": mean, "sd": sd, "ci95": [mean - half, mean + half], "n": n, "text": f"{mean:.4f} ± {half:.4f}"}


def machine() -> dict:
    """benchmarks/common/machine.py's record; it imports recdistill's engine (Lightning), which this venv
    lacks, so it runs with the project's venv when the import fails."""
    try:
        from benchmarks.common.machine import describe
        record = describe()
    except ImportError:
        code = "import json; from benchmarks.common.machine import describe; print(json.dumps(describe()))"
        out = subprocess.run([str(ROOT / ".venv" / "bin" / "python"), "-c", code], cwd=ROOT, capture_output=True,
                             text=True, env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'src'}"})
        record = json.loads(out.stdout) if out.returncode == 0 else {"error": out.stderr[-300:]}
        record["described_by"] = "the project's .venv (same torch build)"
    import recbole
    return {**record, "recbole": recbole.__version__, "recbole_venv_torch": torch.__version__,
            "numpy": np.__version__, "threads": torch.get_num_threads()}


def write_markdown(record: dict, path: Path) -> None:
    s, ours, b = record["summary"], record["ours"], record["budget"]
    lines = [f"# RecBole {record['machine'].get('recbole')} peers on recdistill's ML-100K split ({record['time']})", "",
             "Same split (checked user by user), full-catalogue ranking with seen items excluded, selected on val "
             "NDCG@10, test once on the best checkpoint. `python benchmarks/student/recbole_peers.py "
             f"--epochs {b['epochs']} --batch-size {b['train_batch_size']} --patience {b['patience']}` (RecBole's venv; "
             f"ours: 200 epochs, 19 steps per epoch = batch 5120 here, patience 10); seeds "
             + "; ".join(f"{m} {', '.join(map(str, seeds))}" for m, seeds in record["seeds"].items())
             + f". {record['note']}", "",
             "| model | RecBole test NDCG@10 | RecBole test HR@10 | RecBole val NDCG@10 | ours test NDCG@10 | ours test HR@10 | "
             "ours val / test NDCG@10, RecBole's seeds |", "|---|---|---|---|---|---|---|"]
    for m in s:
        o = ours.get(m, {})
        lines.append(f"| {m} | {s[m]['test/ndcg@10']['text']} | {s[m]['test/hr@10']['text']} | {s[m]['val/ndcg@10']['text']} | "
                     f"{o.get('test/ndcg@10', 'n/a')} | {o.get('test/hr@10', 'n/a')} | "
                     f"{o.get('same_seeds_val/ndcg@10', 'n/a')} / {o.get('same_seeds_test/ndcg@10', 'n/a')} |")
    lines += ["", "Means ± the half-width of the t-based 95 % interval over seeds. Ours (seeds 0-2): "
              + ", ".join(f"`{f}`" for f in OURS.values()) + ".", "",
              "## Runs", "",
              "| model | seed | val NDCG@10 | val HR@10 | test NDCG@10 | test HR@10 | test NDCG@10 (our tie rule) | "
              "best epoch | epochs | s per epoch | wall s |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in record["runs"]:
        lines.append(f"| {r['model']} | {r['seed']} | {r['val/ndcg@10']:.4f} | {r['val/hr@10']:.4f} | "
                     f"{r['test/ndcg@10']:.4f} | {r['test/hr@10']:.4f} | {r['test/ndcg@10_ours_rule']:.4f} | "
                     f"{r['best_epoch']} | {r['epochs_trained']} | {r['seconds_per_epoch']:.0f} | {r['wall_seconds']:.0f} |")
    lines += ["", "## Settings", "", f"Shared: `{json.dumps(record['shared_settings'])}`, Adam betas {BETAS}.", ""]
    lines += [f"- {m}: `{json.dumps(MODELS[m])}`" for m in s]
    lines += ["", "## Where RecBole's runs differ from ours", ""] + [f"- {d}" for d in DIFFERENCES]
    lines += ["", "## Machine", "", f"`{json.dumps(record['machine'])}`; load average at start "
              f"{record['load_average_at_start']}.", ""]
    path.write_text("\n".join(lines))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", nargs="+", default=list(MODELS), choices=list(MODELS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=SHARED["epochs"], help="most epochs per run (ours: 200)")
    parser.add_argument("--batch-size", type=int, default=SHARED["train_batch_size"],
                        help="training samples per step (5120: our 19 steps per epoch)")
    parser.add_argument("--patience", type=int, default=SHARED["stopping_step"] + 1,
                        help="epochs without a better val NDCG@10 before stopping (ours: 10)")
    parser.add_argument("--prepared", default=str(ROOT / "data" / "ml-100k"), help="recdistill's prepared ML-100K")
    parser.add_argument("--work", default=str(ROOT / "bench_runs" / "recbole_peers"))
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    parser.add_argument("--note", default="", help="a sentence for the results (e.g. what else ran on the machine)")
    args = parser.parse_args()
    sys.argv = sys.argv[:1]  # RecBole's Config reads --key=value from the command line too

    load_at_start = [round(x, 2) for x in os.getloadavg()]
    data = load_prepared(args.prepared)
    work = Path(args.work).resolve()
    (work / "runs").mkdir(parents=True, exist_ok=True)
    export(data, work / "atomic")
    os.chdir(work)  # RecBole writes log_tensorboard/ into the working folder
    budget = {"epochs": args.epochs, "train_batch_size": args.batch_size, "stopping_step": args.patience - 1}
    tag = f"e{args.epochs}_b{args.batch_size}_p{args.patience}"
    for model_name in args.models:
        for seed in args.seeds:
            done = work / "runs" / f"{model_name}_seed{seed}_{tag}.json"
            if done.is_file():
                continue
            print(f"{model_name} seed {seed}", flush=True)
            r = run_one(data, model_name, seed, work, budget)
            done.write_text(json.dumps(r, indent=2) + "\n")
            print(f"{model_name} seed {seed}: test NDCG@10 {r['test/ndcg@10']:.4f} HR@10 {r['test/hr@10']:.4f} "
                  f"(best epoch {r['best_epoch']}, {r['wall_seconds']:.0f} s)", flush=True)

    # every finished run with these settings, this call's and earlier calls' (e.g. other seeds or models)
    runs = sorted((json.loads(f.read_text()) for f in (work / "runs").glob(f"*_{tag}.json")),
                  key=lambda r: (list(MODELS).index(r["model"]), r["seed"]))
    models = [m for m in MODELS if any(r["model"] == m for r in runs)]
    summary, ours = {}, {}
    for m in models:
        mine = [r for r in runs if r["model"] == m]
        summary[m] = {k: mean_ci([r[k] for r in mine]) for k in
                      ("val/ndcg@10", "val/hr@10", "test/ndcg@10", "test/hr@10", "test/ndcg@10_ours_rule",
                       "test/hr@10_ours_rule", "best_epoch", "wall_seconds", "seconds_per_epoch")}
        ours_file = ROOT / "benchmarks" / "results" / OURS[m]
        if ours_file.is_file():
            theirs = json.loads(ours_file.read_text())
            ours[m] = {k: mean_ci([r[k] for r in theirs["runs"]])["text"] for k in ("test/ndcg@10", "test/hr@10")}
            same = [r for r in theirs["runs"] if r["seed"] in {x["seed"] for x in runs if x["model"] == m}]
            if same:  # ours on the seeds RecBole ran
                ours[m].update({f"same_seeds_{k}": mean_ci([r[k] for r in same])["text"] for k in ("val/ndcg@10", "test/ndcg@10")})
            ours[m]["file"] = OURS[m]
    record = {"benchmark": "recbole_peers", "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "machine": machine(),
              "load_average_at_start": load_at_start, "note": args.note,
              "dataset": {"prepared": str(Path(args.prepared).resolve()), "fingerprint": data.fingerprint,
                          "users": data.num_users, "items": data.num_items},
              "protocol": "our leave-one-out split exported with timestamps 0..n-1 per user; RecBole LS valid_and_test, "
                          "order TO; full catalogue, seen items excluded (by PeerTrainer), selected on val NDCG@10",
              "seeds": {m: [r["seed"] for r in runs if r["model"] == m] for m in models},
              "budget": {"epochs": args.epochs, "train_batch_size": args.batch_size, "patience": args.patience},
              "shared_settings": {**SHARED, **budget}, "adam_betas": BETAS,
              "model_settings": {m: MODELS[m] for m in models}, "differences_from_ours": DIFFERENCES,
              "runs": runs, "summary": summary, "ours": ours}
    out = Path(args.out)
    (out / "recbole_peers.json").write_text(json.dumps(record, indent=2) + "\n")
    write_markdown(record, out / "recbole_peers.md")
    print((out / "recbole_peers.md").read_text())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
