"""`recdistill train student` and `recdistill eval student` end to end on a tiny dataset."""

import json
import re

import pytest

from recdistill.cli import main
from recdistill.config import compose
from recdistill.student.checkpoint import load_student
from recdistill.recipes.student import train_student

TINY = ["student.hidden_size=16", "student.num_blocks=1", "student.max_len=10", "train.batch_size=8",
        "train.max_epochs=1", "run.progress_bar=false", "eval.sampled_negatives=10"]


def tiny_overrides(tiny_prepared, runs, *extra):
    return [f"prepared={tiny_prepared}", f"paths.runs_dir={runs}", *TINY, *extra]


def _run_folders(runs):
    return sorted(p for p in runs.iterdir() if p.is_dir())


def test_train_then_eval_reproduces_metrics(tiny_prepared, tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["train", "student", *tiny_overrides(tiny_prepared, runs)]) == 0
    out = capsys.readouterr().out
    (run,) = _run_folders(runs)
    assert f"run folder: {run}" in out or str(run.name) in out
    for name in ("config.yaml", "metrics.json", "stages.json", "environment.json", "logs/csv/metrics.csv"):
        assert (run / name).is_file(), name
    (ckpt,) = (run / "checkpoints").glob("student-*.ckpt")
    assert re.fullmatch(r"student-epoch=00-val_ndcg@10=\d\.\d{4}\.ckpt", ckpt.name)
    metrics = json.loads((run / "metrics.json").read_text())
    assert f"{metrics['val/ndcg@10']:.4f}" in ckpt.name
    for key in ("val/hr@1", "val/ndcg@20", "val/recall@5", "val/mrr@10", "test/ndcg@10",
                "test/sampled10_hr@10", "val/sampled10_ndcg@10"):
        assert key in metrics
    assert metrics["val/users"] == 30 and metrics["test/users"] == 30
    stages = {s["stage"]: s for s in json.loads((run / "stages.json").read_text())}
    assert {"fit", "epoch_0", "test"} <= set(stages) and stages["epoch_0"]["sequences"] > 0

    assert main(["eval", "student", str(ckpt), f"paths.runs_dir={runs}", "run.progress_bar=false"]) == 0
    (eval_run,) = [p for p in _run_folders(runs) if p.name.endswith("-eval")]
    again = json.loads((eval_run / "metrics.json").read_text())
    for key, value in again.items():
        assert metrics[key] == value, key  # exactly, not approximately

    model, meta = load_student(ckpt)
    assert meta["num_items"] == 40 and meta["dataset_fingerprint"].startswith("tiny-")
    assert meta["model_config"]["hidden_size"] == 16 and model.max_len == 10
    records = (runs / "results.jsonl").read_text().splitlines()
    assert len(records) == 2


def test_same_seed_same_metrics(tiny_prepared, tmp_path):
    cfg = compose("student", tiny_overrides(tiny_prepared, tmp_path / "runs", "train.max_epochs=1"))
    first = train_student(cfg).metrics
    second = train_student(cfg).metrics
    assert first == second
    other = train_student(compose("student", tiny_overrides(tiny_prepared, tmp_path / "runs", "train.max_epochs=1",
                                                            "efficiency.seed=7"))).metrics
    assert other != first


def test_bce_loss_trains(tiny_prepared, tmp_path):
    cfg = compose("student", tiny_overrides(tiny_prepared, tmp_path / "runs", "student.loss=bce",
                                            "student.num_negatives=2"))
    result = train_student(cfg)
    assert result.metrics["test/users"] == 30


@pytest.mark.parametrize("override, message", [
    ("train.batch_size=0", r"train.batch_size=0 is not valid; expected a number > 0 or one of auto"),
    ("student.loss=mse", r"student.loss='mse' is not valid; choose one of: ce, bce"),
    ("student.num_heads=3", r"must be divisible by student.num_heads=3"),
    ("eval.ks=[5,20]", r"must contain 10"),
])
def test_bad_values_are_clear_errors(tiny_prepared, tmp_path, capsys, override, message):
    assert main(["train", "student", *tiny_overrides(tiny_prepared, tmp_path / "runs", override)]) == 2
    assert re.search(message, capsys.readouterr().err)
    assert not (tmp_path / "runs").exists()  # nothing was started


def test_eval_of_a_missing_checkpoint(tmp_path, capsys):
    assert main(["eval", "student", str(tmp_path / "nope.ckpt")]) == 2
    assert "no student checkpoint" in capsys.readouterr().err


def test_train_prepares_the_dataset_first(tmp_path):
    """Without `prepared=`, `train student` prepares the chosen dataset (here a small CSV) on its own."""
    rows = ["user_id,item_id,timestamp,title"]
    for user in range(1, 13):
        for step in range(8):
            item = (user * 3 + step * (1 + user % 2)) % 25 + 1
            rows.append(f"u{user},i{item},{1000 + step},Movie {item}")
    csv = tmp_path / "inter.csv"
    csv.write_text("\n".join(rows) + "\n")
    runs = tmp_path / "runs"
    assert main(["train", "student", "dataset=csv", f"dataset.path={csv}", f"paths.data_dir={tmp_path / 'data'}",
                 f"paths.runs_dir={runs}", *TINY]) == 0
    assert (tmp_path / "data" / "csv" / "train.parquet").is_file()
    (run,) = _run_folders(runs)
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["test/users"] == 12
