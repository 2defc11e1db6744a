"""A real sweep of the student workload on a tiny dataset: one process per trial, a trial the CPU cannot
run becomes a row saying why, and --apply-best writes a file the next `train student` run picks up."""

import argparse
import json

import pytest
import yaml

from recdistill.sweeps.applied import NO_APPLIED_CONFIG_ENV
from recdistill.recipes.bench import bench_command
from recdistill.sweeps.grid import expand_grid, parse_grid_args
from recdistill.sweeps.records import append_record
from recdistill.sweeps.sweep import run_trials, write_plan
from recdistill.sweeps.trial import failure_reason
from recdistill.cli import main
from recdistill.config import compose
from recdistill.errors import ConfigError


def test_sweep_runs_each_trial_in_its_own_process_and_keeps_going_after_a_failure(
        tiny_prepared, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(NO_APPLIED_CONFIG_ENV, raising=False)
    monkeypatch.delenv("RECDISTILL_CONFIG_DIR", raising=False)
    out = tmp_path / "sweep"
    args = argparse.Namespace(
        workload="student", grid=["efficiency.precision=16-mixed,32-true"], sweep=None, out=str(out),
        apply_best="fit_s", config=[],
        overrides=[f"prepared={tiny_prepared}", "train.limit_train_batches=2", "train.batch_size=8",
                   "student.hidden_size=16", "student.num_blocks=1", "eval.sampled_negatives=0",
                   "bench.timeout_s=300"])
    assert bench_command(args) == 0
    records = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["status"] for r in records] == ["failed", "ok"]
    assert "needs a GPU" in records[0]["reason"]                     # the trial's own error message
    ok = records[1]
    assert ok["metrics"]["val/ndcg@10"] >= 0 and ok["batch_size"] == 8
    assert {s["stage"] for s in ok["stages"]} >= {"fit", "epoch_0", "test"}
    assert ok["environment"]["torch_threads"] >= 1
    assert ok["run_dir"].startswith(str(out / "trials" / "1"))        # paths.runs_dir=<sweep>/trials/<n>
    table = (out / "table.md").read_text()
    assert "needs a GPU" in table and (out / "plots" / "time.png").is_file()

    # --apply-best: the only successful trial's setting, written where the next run looks
    best = tmp_path / "recdistill.student.yaml"
    assert yaml.safe_load(best.read_text()) == {"efficiency": {"precision": "32-true"}}
    printed = capsys.readouterr().out
    assert "efficiency.precision: 'auto' -> '32-true'" in printed

    # the next run picks it up (and records it in its resolved config)
    runs = tmp_path / "runs"
    code = main(["train", "student", f"prepared={tiny_prepared}", f"paths.runs_dir={runs}", "train.max_epochs=1",
                 "train.limit_train_batches=1", "student.hidden_size=16", "student.num_blocks=1",
                 "eval.sampled_negatives=0", "run.progress_bar=false"])
    assert code == 0
    assert "using best settings from recdistill.student.yaml" in capsys.readouterr().err
    (run_dir,) = [p for p in runs.iterdir() if p.is_dir()]
    assert yaml.safe_load((run_dir / "config.yaml").read_text())["efficiency"]["precision"] == "32-true"



def test_a_rerun_into_the_same_folder_skips_finished_trials(tmp_path, capsys):
    bench = compose("bench", ["bench=student"]).bench
    plan = expand_grid(parse_grid_args(["train.batch_size=8,16"]))
    spec = write_plan(tmp_path, "student", bench, plan, [], [])
    for trial in plan.trials:
        append_record(tmp_path / "results.jsonl", {"trial": trial.index, "overrides": trial.overrides, "status": "ok"})
    records = run_trials(tmp_path, spec, bench)  # nothing left to run: no process is started
    assert len(records) == 2 and "resuming: 2 trial(s) already done" in capsys.readouterr().out
    other = expand_grid(parse_grid_args(["train.batch_size=8,32"]))
    with pytest.raises(ConfigError, match="different sweep"):
        write_plan(tmp_path, "student", bench, other, [], [])


def test_failure_reasons_name_the_cause():
    assert failure_reason(None, [], True, 60) == "timed out after 60 s"
    assert failure_reason(-9, [], False, 60).startswith("killed by SIGKILL")
    oom = ["Traceback ...", "torch.OutOfMemoryError: CUDA out of memory. Tried to allocate 20.00 MiB"]
    assert failure_reason(1, oom, False, 60).startswith("out of memory: torch.OutOfMemoryError")
    assert failure_reason(2, ["error: efficiency.precision=16-mixed needs a GPU"], False, 60) == \
        "efficiency.precision=16-mixed needs a GPU"
    assert failure_reason(1, ["Traceback", "ValueError: bad thing"], False, 60) == "ValueError: bad thing"
