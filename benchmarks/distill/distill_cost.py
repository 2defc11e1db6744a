"""What distillation costs per epoch against the student alone (target: at most 1.5x).

Same data (ML-100K), same student (the default ``conf/student/sasrec.yaml``), same batch size, same
Trainer; the only difference is the module and the teacher rows in the batch. Each variant trains
``--epochs`` epochs without validation and the last epoch is timed (the first one pays for warm-up).
Variants run interleaved, ``--repeats`` times each, and both wall seconds and the process's CPU seconds
are reported: on a shared machine the wall clock moves with other people's load, the CPU time much less.

The teacher outputs: ``--teacher-outputs`` (for example the gate experiment's export), or, when absent,
an export over every training position (the worst case) from :class:`RandomTeacher`, written by the real
writer: the cost of distillation depends on K, the embedding size and how many positions are covered,
not on how good the teacher is, and a random teacher exports 95k rows in seconds.

    python benchmarks/distill/distill_cost.py                   # writes benchmarks/results/distill_cost.{json,md}
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import lightning as L
import numpy as np
import torch
from omegaconf import OmegaConf

import recdistill.config
from recdistill.config import compose
from recdistill.recipes.prepare import ensure_prepared_from
from recdistill.data.prepared import load_prepared
from recdistill.recipes.distill import build_distill_datamodule as distill_datamodule, distill_module
from recdistill.recipes.lifecycle import efficiency
from recdistill.engine import atomic_write_json, atomic_write_text, build_trainer, describe_environment
from recdistill.teacher_outputs import load_teacher_outputs
from recdistill.teacher_outputs.build import ExportSettings, export_files
from recdistill.recipes.student import build_datamodule as student_datamodule, student_module

ROOT = Path(__file__).resolve().parents[2]  # the repository root
RESULTS = ROOT / "benchmarks" / "results"


class EpochClock(L.Callback):
    """Wall and CPU seconds of every training epoch."""

    def __init__(self):
        self.epochs: list[dict] = []

    def on_train_epoch_start(self, trainer, pl_module):
        self._wall, self._cpu = time.perf_counter(), time.process_time()

    def on_train_epoch_end(self, trainer, pl_module):
        self.epochs.append({"wall": time.perf_counter() - self._wall, "cpu": time.process_time() - self._cpu})


class RandomTeacher:
    """A :class:`recdistill.teacher_outputs.Ranker` returning K random unseen items with random scores, and random
    ``dim``-sized item embeddings."""

    def __init__(self, num_items: int, dim: int = 128, seed: int = 0):
        self.num_items, self.dim, self.rng = num_items, dim, np.random.default_rng(seed)

    def identity(self):
        return {"kind": "student", "model": "random", "adapter": None, "config_hash": f"random-{self.dim}"}

    def rank(self, histories, candidates, top_k):
        # K distinct unseen items: the first K of a random permutation that are not in the history
        # (histories hold at most a few hundred of the 1,682 items, so 4K draws are plenty)
        items = np.zeros((len(histories), top_k), dtype=np.int64)
        for row, hist in enumerate(histories):
            draw = self.rng.permutation(self.num_items)[: 4 * top_k + len(hist)] + 1
            items[row] = draw[~np.isin(draw, hist)][:top_k]
        return items, -np.sort(-self.rng.normal(size=items.shape), axis=1)

    def item_embeddings(self):
        emb = torch.from_numpy(self.rng.normal(size=(self.num_items + 1, self.dim))).float()
        emb[0] = 0
        return emb


def random_teacher_outputs(data, out: Path, top_k: int) -> Path:
    export = OmegaConf.load(Path(recdistill.config.__file__).parent / "conf" / "export" / "default.yaml")
    export.update({"candidates": "all", "top_k": top_k, "batch_size": 2048, "progress_bar": True})
    export_files(ExportSettings(**OmegaConf.to_container(export)), RandomTeacher(data.num_items), data, out)
    return out


def time_variant(name: str, cfg, data, teacher, epochs: int) -> dict:
    torch.manual_seed(0)
    if teacher is None:
        dm = student_datamodule(cfg, data, "cpu")
        module = student_module(cfg, data.num_items)
    else:
        dm = distill_datamodule(cfg, data, teacher, "cpu")
        emb = teacher.embeddings if cfg.distill.ed.gamma > 0 else None
        module = distill_module(cfg, data.num_items, llm_embeddings=emb)
    clock = EpochClock()
    trainer = build_trainer(efficiency(cfg), None, callbacks=[clock], max_epochs=epochs, limit_val_batches=0,
                            progress_bar=False, loggers=False)
    trainer.fit(module, datamodule=dm)
    last = clock.epochs[-1]
    print(f"{name:28s} last epoch: {last['wall']:.2f} s wall, {last['cpu']:.2f} s cpu")
    return last


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--teacher-outputs", default=None, help="an export folder; default: a random SASRec teacher")
    p.add_argument("--work", default=str(ROOT / "runs" / "distill_cost"))
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--top-k", type=int, default=20)
    p.add_argument("--loss", default="ce", help="student.loss of every variant")
    p.add_argument("--all-variants", action="store_true", help="also time ranking-only and embedding-only distillation")
    args = p.parse_args()
    torch.set_num_threads(args.threads)
    common = [f"paths.runs_dir={args.work}/runs", f"paths.data_dir={args.work}/data", f"student.loss={args.loss}",
              "efficiency.accelerator=cpu"]
    data = load_prepared(ensure_prepared_from(compose("student", common)))
    outputs = Path(args.teacher_outputs) if args.teacher_outputs else Path(args.work) / "teacher_outputs"
    if not args.teacher_outputs:
        random_teacher_outputs(data, outputs, args.top_k)
    teacher = load_teacher_outputs(outputs, data.train, data.fingerprint, data.num_items)

    variants = {
        "student alone": (compose("student", common), None),
        "distill (kd + ed, defaults)": (compose("distill", [*common, f"distill.teacher_outputs={outputs}"]), teacher),
    }
    if args.all_variants:
        variants["distill (kd only)"] = (compose("distill", [*common, f"distill.teacher_outputs={outputs}",
                                                             "distill.ed.gamma=0"]), teacher)
        variants["distill (ed only)"] = (compose("distill", [*common, f"distill.teacher_outputs={outputs}",
                                                             "distill.kd.weight=0"]), teacher)
    timings: dict[str, list[dict]] = {name: [] for name in variants}
    for _ in range(args.repeats):
        for name, (cfg, t) in variants.items():
            timings[name].append(time_variant(name, cfg, data, t, args.epochs))

    base = {k: statistics.median(r[k] for r in timings["student alone"]) for k in ("wall", "cpu")}
    rows, table = {}, ["| variant | epoch wall s (median) | epoch CPU s (median) | x student (wall) | x student (CPU) |",
                       "|---|---|---|---|---|"]
    for name, runs in timings.items():
        med = {k: statistics.median(r[k] for r in runs) for k in ("wall", "cpu")}
        rows[name] = {"runs": runs, "median": med, "ratio": {k: med[k] / base[k] for k in med}}
        table.append(f"| {name} | {med['wall']:.2f} | {med['cpu']:.2f} | {med['wall'] / base['wall']:.2f} "
                     f"| {med['cpu'] / base['cpu']:.2f} |")
    target = rows["distill (kd + ed, defaults)"]["ratio"]["cpu"] <= 1.5
    result = {"settings": vars(args), "teacher_rows": len(teacher), "teacher_top_k": teacher.top_k,
              "coverage": "every training position", "variants": rows, "target_1_5x_met_cpu": target,
              "environment": describe_environment()}
    RESULTS.mkdir(parents=True, exist_ok=True)
    atomic_write_json(RESULTS / "distill_cost.json", result)
    text = (f"# Cost of an epoch of distillation\n\nML-100K, default student (`student.loss={args.loss}`), batch "
            f"{compose('student', common).train.batch_size}, {args.threads} thread(s), teacher top-{teacher.top_k} at "
            f"{len(teacher)} training positions (all of them); last of {args.epochs} epochs, median of "
            f"{args.repeats} interleaved repeats. Target: at most 1.5x the student alone.\n\n" + "\n".join(table)
            + f"\n\nTarget met (CPU time, defaults): {'yes' if target else 'NO'}\n")
    atomic_write_text(RESULTS / "distill_cost.md", text)
    print(text)


if __name__ == "__main__":
    main()
