"""`recdistill train student --seeds`: one run per seed and a summary over them from the report's
aggregation (mean, 95 % t interval)."""

import json
import re
import statistics

import yaml

from recdistill.cli import main

TINY = ["student.hidden_size=16", "student.num_blocks=1", "student.max_len=10", "train.batch_size=8",
        "train.max_epochs=1", "run.progress_bar=false", "eval.sampled_negatives=0"]


def test_train_student_over_seeds(tiny_prepared, tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["train", "student", "--seeds", "3,5", f"prepared={tiny_prepared}", f"paths.runs_dir={runs}", *TINY]) == 0
    out = capsys.readouterr().out
    folders = sorted(p for p in runs.iterdir() if p.is_dir())
    assert len(folders) == 2
    seeds = [yaml.safe_load((f / "config.yaml").read_text())["efficiency"]["seed"] for f in folders]
    assert sorted(seeds) == [3, 5]
    values = [json.loads((f / "metrics.json").read_text())["test/ndcg@10"] for f in folders]
    line = next(l for l in out.splitlines() if l.strip().startswith("test/ndcg@10 "))
    assert re.search(rf"{statistics.fmean(values):.4f} ± [0-9.]+ \(95 ?% CI", line), line
    assert "over seeds 3, 5" in out and "recdistill report" in out


def test_seed_list_and_seed_override_together_are_refused(tiny_prepared, tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["train", "student", "--seeds", "0,1", f"prepared={tiny_prepared}", f"paths.runs_dir={runs}",
                 "efficiency.seed=2", *TINY]) == 2
    assert "not both" in capsys.readouterr().err and not runs.exists()
