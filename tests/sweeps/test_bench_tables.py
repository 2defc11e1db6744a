"""Trial records -> tables, CSV and plots (and back through `bench report`); choosing and applying the best."""

import argparse
import csv
import io

import pytest
import yaml

from recdistill.sweeps.applied import NO_APPLIED_CONFIG_ENV, applied_config_files, applied_config_path
from recdistill.sweeps.apply_best import choose_best, parse_spec, write_best
from recdistill.recipes.bench_checks import settings_diff
from recdistill.recipes.bench import apply_best, report_command
from recdistill.sweeps.grid import expand_cumulative, expand_grid, parse_grid_args
from recdistill.sweeps.records import append_record, flatten
from recdistill.sweeps.sweep import load_sweep, render, rows_of, write_plan
from recdistill.recipes.config import load_config
from recdistill.config import compose
from recdistill.errors import ConfigError


def _record(trial, settings, fit_s, rss, ndcg, status="ok", reason=None):
    stages = [] if status != "ok" else [
        {"stage": "validation_0", "seconds": 1.0, "steps": 2, "sequences": 943, "sequences_per_second": 943.0,
         "peak_rss_mb": rss - 10},
        {"stage": "epoch_0", "seconds": fit_s - 0.1, "steps": 10, "sequences": 640, "sequences_per_second": 640 / fit_s,
         "peak_rss_mb": rss},
        {"stage": "fit", "seconds": fit_s, "steps": 10, "sequences": 640, "sequences_per_second": 640 / fit_s,
         "warmup_steps_excluded": 2, "peak_rss_mb": rss},
        {"stage": "test", "seconds": 2.0, "steps": 2, "sequences": 943, "sequences_per_second": 471.5,
         "peak_rss_mb": rss - 20},
    ]
    return {"trial": trial, "name": " ".join(f"{k}={v}" for k, v in settings.items()), "settings": settings,
            "overrides": [f"{k}={v}" for k, v in settings.items()], "status": status, "reason": reason,
            "wall_seconds": fit_s + 9, "metrics": {"val/ndcg@10": ndcg} if status == "ok" else {},
            "stages": stages, "environment": {"device": "cpu (x86_64, 2 cores)", "torch_threads": 2,
                                              "packages": {"torch": "2.x"}}, "batch_size": 64}


@pytest.fixture
def grid_sweep(tmp_path):
    bench = compose("bench", ["bench=student"]).bench
    plan = expand_grid(parse_grid_args(["train.batch_size=64,128", "efficiency.num_workers=0,1"]))
    out = tmp_path / "sweep"
    spec = write_plan(out, "student", bench, plan, ["train.max_epochs=1"], [])
    records = [
        _record(0, {"train.batch_size": 64, "efficiency.num_workers": 0}, 10.0, 700.0, 0.05),
        _record(1, {"train.batch_size": 64, "efficiency.num_workers": 1}, 12.0, 720.0, 0.05),
        _record(2, {"train.batch_size": 128, "efficiency.num_workers": 0}, 5.0, 900.0, 0.06),
        _record(3, {"train.batch_size": 128, "efficiency.num_workers": 1}, 0, 0, 0, status="failed",
                reason="out of memory: CUDA out of memory. Tried to allocate 2.00 GiB"),
    ]
    for record in records:
        append_record(out / "results.jsonl", record)
    return out, spec, bench


def test_rows_have_stage_seconds_throughput_memory_metric_and_reason(grid_sweep):
    out, spec, _ = grid_sweep
    spec, records = load_sweep(out)
    rows = rows_of(spec, records)
    assert rows[0]["fit_s"] == 10.0 and rows[0]["epoch_s"] == 9.9 and rows[0]["test_s"] == 2.0
    assert rows[0]["train_sequences_per_s"] == pytest.approx(64.0)
    assert rows[2]["peak_rss_mb"] == 900.0 and rows[2]["val/ndcg@10"] == 0.06
    assert rows[3]["status"] == "failed" and "out of memory" in rows[3]["reason"]


def test_records_round_trip_through_the_renderer(grid_sweep):
    out, _, _ = grid_sweep
    written = render(out)
    table = (out / "table.md").read_text()
    assert "| 0 (baseline) | 64 | 0 | ok | 10.00 |" in table
    assert "5.00 (-50%)" in table             # fit seconds of trial 2 against the baseline
    assert "900 (+29%)" in table              # its peak RSS
    assert "failed" in table and "CUDA out of memory" in table
    assert "train sequences/s" in table and "Environment: device: cpu" in table
    rows = list(csv.DictReader(io.StringIO((out / "table.csv").read_text())))
    assert [r["status"] for r in rows] == ["ok", "ok", "ok", "failed"]
    assert float(rows[2]["fit_s"]) == 5.0
    pngs = [p for p in written if p.suffix == ".png"]
    assert {p.name for p in pngs} >= {"time.png", "memory.png", "throughput.png", "grid_time.png"}
    assert all(p.read_bytes()[:4] == b"\x89PNG" for p in pngs)
    (out / "table.md").unlink()
    assert report_command(argparse.Namespace(dir=str(out))) == 0  # `bench report DIR` re-renders
    assert (out / "table.md").read_text() == table


def test_cumulative_table_shows_change_against_baseline_and_previous(tmp_path):
    bench = compose("bench", ["bench=student"]).bench
    plan = expand_cumulative([{}, {"efficiency.fused_adamw": True}, {"efficiency.compile": True}], "t")
    out = tmp_path / "cum"
    write_plan(out, "student", bench, plan, [], [])
    for i, fit in enumerate([10.0, 8.0, 6.0]):
        append_record(out / "results.jsonl", _record(i, plan.trials[i].settings, fit, 700.0, 0.05))
    render(out)
    text = (out / "cumulative.md").read_text()
    line = next(li for li in text.splitlines() if li.startswith("| 2 |"))
    assert "efficiency.compile=true" in line and "-40%" in line and "-25%" in line


def test_report_of_a_folder_that_is_not_a_sweep(tmp_path):
    with pytest.raises(ConfigError, match="not a sweep folder"):
        report_command(argparse.Namespace(dir=str(tmp_path)))


def test_choose_best_directions_limits_and_aliases():
    rows = [flatten(_record(0, {"a": 1}, 10.0, 700.0, 0.05)), flatten(_record(1, {"a": 2}, 5.0, 900.0, 0.04)),
            flatten(_record(2, {"a": 3}, 1.0, 0, 0, status="failed", reason="x"))]
    assert choose_best(rows, "fit_s")[0]["trial"] == 1                      # failed rows never win
    assert choose_best(rows, "time,peak_rss_mb<=800")[0]["trial"] == 0      # fastest within a memory limit
    assert choose_best(rows, "val/ndcg@10")[0]["trial"] == 0                # higher is better
    assert choose_best(rows, "throughput")[0]["trial"] == 1
    assert parse_spec("fit_s:max", rows, None)[1] == "max"
    with pytest.raises(ConfigError, match="no successful trial"):
        choose_best(rows, "fit_s,peak_rss_mb<=10")
    with pytest.raises(ConfigError, match="no column 'nope'"):
        choose_best(rows, "nope:min")


def test_apply_best_file_is_picked_up_by_the_next_run(grid_sweep, tmp_path, monkeypatch, capsys):
    out, spec, bench = grid_sweep
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(NO_APPLIED_CONFIG_ENV, raising=False)
    monkeypatch.delenv("RECDISTILL_CONFIG_DIR", raising=False)
    _, records = load_sweep(out)
    path = apply_best(out, spec, records, "fit_s", "student", bench)
    assert path == applied_config_path("student") and path.is_file()
    printed = capsys.readouterr().out
    assert "best by fit_s (min): trial 2" in printed and "train.batch_size: 128 -> 128" not in printed
    assert "efficiency.num_workers" not in yaml.safe_load(path.read_text()).get("efficiency", {})  # 0 = default
    assert yaml.safe_load(path.read_text()) == {} or yaml.safe_load(path.read_text())["train"]["batch_size"] == 128
    # a later run of the workload picks the file up before its own --config files and overrides
    assert applied_config_files("student") == [path]
    cfg = load_config("student", ["train.lr=0.01"], applied=True)
    assert "using best settings" in capsys.readouterr().err
    assert cfg.train.lr == 0.01
    # evaluations and other workloads are untouched, and the switch turns the pickup off
    load_config("student", ["train.lr=0.01"])
    assert "using best settings" not in capsys.readouterr().err
    assert applied_config_files("teacher") == []
    monkeypatch.setenv(NO_APPLIED_CONFIG_ENV, "1")
    assert applied_config_files("student") == []


def test_written_settings_merge_and_only_differences_are_kept(tmp_path):
    diff = settings_diff("student", {"train.batch_size": 256, "efficiency.num_workers": 0},
                         ["train.batch_size", "efficiency.num_workers"])
    assert diff == {"train.batch_size": (128, 256)}                 # num_workers=0 is the default
    path = tmp_path / "recdistill.student.yaml"
    write_best(path, diff, "test")
    write_best(path, settings_diff("student", {"efficiency": "none"}, ["efficiency"]), "test")
    data = yaml.safe_load(path.read_text())
    assert data["train"]["batch_size"] == 256                       # the earlier sweep's value stays
    assert data["efficiency"]["precision"] == "32-true"             # a group choice writes its differing keys
    cfg = compose("student", [], [path])
    assert cfg.train.batch_size == 256 and cfg.efficiency.fused_adamw is False
