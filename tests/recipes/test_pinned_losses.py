"""One run per workload on tiny data with a fixed seed, its losses and metrics pinned (torchtune's recipe
tests): a refactor that changes the numbers fails here loudly. The runs go through the commands users type.

The pinned figures were measured on torch 2.13.0 (CPU). Other CPUs or torch builds may pick other kernels,
hence the relative tolerance; a changed loss or sampling order moves them far more than that. When a change is
meant to move them, rerun with RECDISTILL_PRINT_PINNED=1 and paste what it prints."""

from __future__ import annotations

import csv
import json
import math
import os

import pytest
import torch

from conftest import make_tiny_prepared
from recdistill.cli import main
from teacher_fixtures import CACHE, make_student, write_student_checkpoint

TOLERANCE = 2e-3   # relative
COMMON = ["run.progress_bar=false", "efficiency.seed=0"]
STUDENT = ["student.max_len=8", "student.hidden_size=16", "student.num_blocks=1", "train.max_epochs=2",
           "train.batch_size=16", "eval.sampled_negatives=10"]


@pytest.fixture(autouse=True)
def one_thread():
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def only_run(runs):
    folders = [p for p in runs.iterdir() if p.is_dir()]
    assert len(folders) == 1, folders
    return folders[0]


def figures(run, metric_keys):
    """The run's logged training losses (in step order) and the chosen metrics."""
    losses = []
    for path in sorted((run / "logs").glob("csv*/metrics.csv")):
        with open(path) as f:
            for row in csv.DictReader(f):
                for key in ("train/loss", "train_loss", "train/loss_step"):
                    if row.get(key):
                        losses.append(float(row[key]))
                        break
    metrics = json.loads((run / "metrics.json").read_text())
    return {"losses": losses, **{k: metrics[k] for k in metric_keys}}


def check(name, got):
    if os.environ.get("RECDISTILL_PRINT_PINNED"):
        print(f"\nPINNED[{name!r}] = {json.dumps(got)}")
        return
    want = PINNED[name]
    assert len(got["losses"]) == len(want["losses"]), (got["losses"], want["losses"])
    for key in want:
        values = got[key] if key == "losses" else [got[key]]
        pinned = want[key] if key == "losses" else [want[key]]
        for g, w in zip(values, pinned):
            assert math.isclose(g, w, rel_tol=TOLERANCE, abs_tol=1e-6), f"{name} {key}: got {values}, pinned {pinned}"


def test_student_recipe_numbers_are_pinned(tmp_path):
    prepared = make_tiny_prepared(tmp_path / "data" / "tiny")
    runs = tmp_path / "runs"
    assert main(["train", "student", f"prepared={prepared}", f"paths.runs_dir={runs}", *COMMON, *STUDENT]) == 0
    check("student", figures(only_run(runs), ["val/ndcg@10", "test/ndcg@10", "test/sampled10_ndcg@10"]))


def test_distill_recipe_numbers_are_pinned(tmp_path):
    prepared = make_tiny_prepared(tmp_path / "data" / "tiny")
    teacher_runs, runs = tmp_path / "teacher_runs", tmp_path / "runs"
    assert main(["train", "student", f"prepared={prepared}", f"paths.runs_dir={teacher_runs}", *COMMON, *STUDENT,
                 "student.hidden_size=24"]) == 0
    teacher = next((only_run(teacher_runs) / "checkpoints").glob("student-epoch=*.ckpt"))
    outputs = tmp_path / "teacher_outputs"
    assert main(["export", f"prepared={prepared}", f"paths.runs_dir={teacher_runs}", "run.progress_bar=false",
                 "teacher=student", f"teacher.checkpoint={teacher}", "export.candidates=all", "export.top_k=5",
                 f"export.out_dir={outputs}"]) == 0
    assert main(["train", "distill", f"prepared={prepared}", f"paths.runs_dir={runs}", *COMMON, *STUDENT,
                 f"distill.teacher_outputs={outputs}"]) == 0
    check("distill", figures(only_run(runs), ["val/ndcg@10", "test/ndcg@10", "teacher_coverage"]))


def test_teacher_recipe_numbers_are_pinned(tmp_path):
    prepared = make_tiny_prepared(tmp_path / "data" / "tiny")
    from recdistill.data.prepared import load_prepared
    student = write_student_checkpoint(tmp_path / "student.ckpt", make_student(), load_prepared(prepared))
    runs = tmp_path / "runs"
    assert main(["train", "teacher", f"prepared={prepared}", f"paths.runs_dir={runs}", f"paths.cache_dir={CACHE}",
                 *COMMON, "llm=tiny-llama", f"teacher.student_checkpoint={student}", "train.batch_size=4",
                 "train.limit_train_batches=3", "train.limit_val_batches=1", "train.limit_test_batches=1",
                 "train.eval_batch_size=4", "teacher.data.train_positions=last", "teacher.data.last_n=2",
                 "teacher.prompt.max_tokens=200", "efficiency.accumulate_grad_batches=1",
                 "efficiency.precision=32-true"]) == 0
    check("teacher", figures(only_run(runs), ["val/loss", "val/cand20_ndcg@10", "test/cand20_ndcg@10"]))


def test_lm_recipe_numbers_are_pinned(tmp_path):
    corpus = tmp_path / "plays.txt"
    corpus.write_text("".join(f"{who}: the {what} is in the {where}.\n" for who in ("ANNA", "BEN")
                              for what in ("cat", "book") for where in ("hall", "garden")) * 8)
    runs = tmp_path / "runs"
    assert main(["lm", "train", f"lm.corpus={corpus}", f"paths.data_dir={tmp_path}/data", f"paths.runs_dir={runs}",
                 f"paths.cache_dir={tmp_path}/cache", *COMMON, "lm.d_model=32", "lm.n_layers=2", "lm.n_heads=2",
                 "lm.context_length=32", "lm.dropout=0.0", "train.batch_size=8", "train.eval_batch_size=16",
                 "train.lr=0.003", "train.max_steps=12", "train.val_every_steps=6", "train.limit_val_batches=2",
                 "train.progress_every_steps=3", "efficiency.accelerator=cpu"]) == 0
    check("lm", figures(only_run(runs), ["val/loss"]))


PINNED = {
    'student': {"losses": [4.088913917541504, 4.218303203582764, 4.04412841796875, 4.134940147399902, 3.9725797176361084, 4.041556358337402, 4.061216831207275, 3.9357614517211914], "val/ndcg@10": 0.21950489282608032, "test/ndcg@10": 0.20975838601589203, "test/sampled10_ndcg@10": 0.38526681065559387},
    'distill': {"losses": [5.479201316833496, 5.373056411743164, 5.297895431518555, 5.392528057098389, 5.327674865722656, 5.328693866729736, 5.342593193054199, 5.1874213218688965], "val/ndcg@10": 0.2211160957813263, "test/ndcg@10": 0.1437264382839203, "teacher_coverage": 1.0},
    'teacher': {"losses": [10.773286819458008, 10.701363563537598, 10.677155494689941], "val/loss": 10.55339241027832, "val/cand20_ndcg@10": 0.3830311894416809, "test/cand20_ndcg@10": 0.4895668029785156},
    'lm': {"losses": [5.528850078582764, 5.302507400512695, 5.154888153076172, 5.041811466217041, 4.925783157348633, 4.818785667419434, 4.7149176597595215, 4.651559829711914, 4.594754695892334, 4.564180374145508, 4.541629791259766, 4.524354934692383], "val/loss": 4.5332644780476885},
}
