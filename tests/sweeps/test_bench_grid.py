"""Sweep plans: grid expansion, cumulative steps, sweep files, and bad input refused before anything runs."""

import argparse

import pytest

from recdistill.recipes.bench import sweep_plan, bench_command
from recdistill.sweeps.grid import (expand_cumulative, expand_grid, format_value, load_sweep_file, parse_grid_args,
                                   parse_value, shipped_sweeps)
from recdistill.recipes.bench_checks import load_validator, validate_plan
from recdistill.errors import ConfigError


def test_grid_is_the_product_in_order_last_key_fastest():
    plan = expand_grid(parse_grid_args(["train.batch_size=64,128", "efficiency.num_workers=0,1,2"]))
    assert plan.keys == ["train.batch_size", "efficiency.num_workers"]
    assert [tuple(t.settings.values()) for t in plan.trials] == [
        (64, 0), (64, 1), (64, 2), (128, 0), (128, 1), (128, 2)]
    assert plan.trials[4].overrides == ["train.batch_size=128", "efficiency.num_workers=1"]
    assert [t.index for t in plan.trials] == list(range(6))


def test_values_keep_their_types_and_lists_are_one_value():
    grid = parse_grid_args(["a=1,2.5,true,null,bf16-mixed", "b=[1,2],[3,4]", "c='32'"])
    assert grid["a"] == [1, 2.5, True, None, "bf16-mixed"]
    assert grid["b"] == [[1, 2], [3, 4]]
    assert grid["c"] == ["32"]
    for value in (1, 2.5, True, None, "bf16-mixed", [1, 2], "32", "true", "auto"):
        assert parse_value(format_value(value)) == value


def test_cumulative_steps_add_to_the_previous_one():
    plan = expand_cumulative([{}, {"efficiency.fused_adamw": True}, {"efficiency.compile": True}], "test")
    assert plan.mode == "cumulative"
    assert [t.settings for t in plan.trials] == [
        {}, {"efficiency.fused_adamw": True}, {"efficiency.fused_adamw": True, "efficiency.compile": True}]
    assert plan.trials[2].added == {"efficiency.compile": True}
    assert plan.trials[0].name == "baseline"


def test_sweep_file_and_shipped_sweeps(tmp_path):
    path = tmp_path / "s.yaml"
    path.write_text("mode: grid\ngrid:\n  train.batch_size: [32, 64]\noverrides:\n  train.limit_train_batches: 3\n")
    plan = load_sweep_file(str(path))
    assert len(plan.trials) == 2 and plan.overrides == ["train.limit_train_batches=3"]
    shipped = shipped_sweeps()
    assert "student-batch-workers" in shipped
    for name in shipped:  # every shipped sweep parses
        assert load_sweep_file(name).trials


@pytest.mark.parametrize("items, message", [
    ([], "nothing to sweep"),
    (["train.batch_size"], "key=v1,v2"),
    (["train.batch_size="], "empty value"),
    (["train.batch_size=1,,2"], "empty value"),
    (["train.batch_size=1", "train.batch_size=2"], "twice"),
])
def test_malformed_grid_is_refused(items, message):
    args = argparse.Namespace(grid=items, sweep=None, workload="student")
    with pytest.raises(ConfigError, match=message):
        sweep_plan(args)


def test_single_valued_grid_entries_become_fixed_overrides():
    args = argparse.Namespace(grid=["train.batch_size=32,64", "train.limit_train_batches=3"], sweep=None,
                              workload="student")
    plan = sweep_plan(args)
    assert plan.keys == ["train.batch_size"] and plan.overrides == ["train.limit_train_batches=3"]


def _validate(grid, validator=None):
    plan = expand_grid(parse_grid_args(grid))
    return validate_plan("student", plan.keys, [t.overrides for t in plan.trials], [t.settings for t in plan.trials],
                         ["train.max_epochs=1"], [], auto_keys=("train.batch_size",), validator=validator)


def test_unknown_key_wrong_type_and_bad_option_are_refused():
    with pytest.raises(ConfigError, match="valid keys under train: .*batch_size"):
        _validate(["train.batchsize=1,2"])
    with pytest.raises(ConfigError, match="wrong type: expected int"):
        _validate(["train.batch_size=64,big"])
    with pytest.raises(ConfigError, match="wrong type: expected bool"):
        _validate(["efficiency.compile=false,1"])
    with pytest.raises(ConfigError, match="choose one of"):
        _validate(["efficiency=default,fast"])
    with pytest.raises(ConfigError, match="is a section"):
        _validate(["run=1,2"])
    _validate(["train.batch_size=auto,64", "efficiency=default,none", "train.lr=1,0.01"])  # all fine


def test_the_workloads_own_check_runs_on_every_combination():
    check = load_validator("recdistill.recipes.student:validate_student_config", None)
    with pytest.raises(ConfigError, match="trial student.num_heads=3.*divisible"):
        _validate(["student.num_heads=1,3"], check)


def test_bad_grid_fails_before_any_trial_runs(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    args = argparse.Namespace(workload="student", grid=["train.batch_size=64,oops"], sweep=None, out=None,
                              apply_best=None, config=[], overrides=[])
    with pytest.raises(ConfigError, match="wrong type"):
        bench_command(args)
    assert not (tmp_path / "bench_runs").exists()
    args.grid, args.apply_best = ["train.batch_size=64,128"], "throughput,peak_rss_mb<<3"
    with pytest.raises(ConfigError, match="column<=number"):
        bench_command(args)
    assert not (tmp_path / "bench_runs").exists()
