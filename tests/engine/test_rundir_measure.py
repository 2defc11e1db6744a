"""Run folders, atomic writes, stage measurements and schedules."""

import json
import os

import pytest
import torch

from recdistill.engine import RunDir, StageTracker, atomic_write_json, build_scheduler, measure_stage
from recdistill.engine.memory import MemoryProbe
from recdistill.errors import ConfigError


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path):
    target = tmp_path / "a.json"
    atomic_write_json(target, {"x": 1})
    atomic_write_json(target, {"x": 2})
    assert json.loads(target.read_text()) == {"x": 2}
    assert os.listdir(tmp_path) == ["a.json"]


def test_atomic_write_failure_keeps_old_content(tmp_path):
    target = tmp_path / "a.json"
    atomic_write_json(target, {"x": 1})
    circular: dict = {}
    circular["self"] = circular
    with pytest.raises(ValueError):
        atomic_write_json(target, circular)  # json refuses before anything is written
    assert json.loads(target.read_text()) == {"x": 1}


def test_rundir_finish_writes_files_and_appends_results(tmp_path):
    a = RunDir.create(tmp_path, "demo")
    b = RunDir.create(tmp_path, "demo")
    assert a.path != b.path
    from omegaconf import OmegaConf

    a.write_config(OmegaConf.to_yaml(OmegaConf.create({"k": 1})))
    a.finish("student", {"val/ndcg@10": 0.1}, [{"stage": "fit", "seconds": 1.0}], {"device": "cpu"})
    b.finish("student", {"val/ndcg@10": 0.2}, [], {})
    lines = (tmp_path / "results.jsonl").read_text().splitlines()
    assert [json.loads(l)["metrics"]["val/ndcg@10"] for l in lines] == [0.1, 0.2]
    for name in ("config.yaml", "metrics.json", "stages.json", "environment.json"):
        assert (a.path / name).is_file()


def test_stage_tracker_nesting_and_warmup_exclusion():
    tracker = StageTracker(warmup_steps=2)
    with measure_stage(tracker, "outer", warmup_steps=2) as outer:
        with measure_stage(tracker, "inner", warmup_steps=0) as inner:
            inner.add({"rows": 5})
        for _ in range(4):
            outer.add({"rows": 10})
    names = [r["stage"] for r in tracker.records]
    assert names == ["inner", "outer"]
    outer_rec = tracker.records[1]
    assert outer_rec["rows"] == 40 and outer_rec["steps"] == 4
    assert outer_rec["warmup_steps_excluded"] == 2
    assert outer_rec["rows_per_second"] > 0
    assert "peak_rss_mb" in outer_rec


def test_peak_rss_is_reset_per_stage_where_linux_allows():
    probe = MemoryProbe()
    if not probe.rss_resettable:
        pytest.skip("this kernel does not allow resetting the resident-set high-water mark")
    probe.reset()
    big = torch.ones(64 * 2**20 // 4)  # 64 MiB, touched
    high = probe.read()["peak_rss_mb"]
    del big
    probe.reset()
    low = probe.read()["peak_rss_mb"]
    assert high - low > 40


def _lrs(kind, steps=10, warmup=0.2):
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    sched = build_scheduler(opt, kind, steps, warmup_ratio=warmup)
    out = []
    for _ in range(steps):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_cosine_warms_up_then_decays():
    lrs = _lrs("cosine")
    assert lrs[0] == pytest.approx(0.5) and lrs[1] == pytest.approx(1.0)
    assert all(a >= b for a, b in zip(lrs[1:], lrs[2:]))
    assert lrs[-1] < 0.1


def test_the_warmup_can_start_at_a_share_of_lr():
    """iLoRA's scheduler warms up linearly from 1 % of lr (efficiency.warmup_start_ratio=0.01)."""
    p = torch.nn.Parameter(torch.zeros(1))
    opt = torch.optim.SGD([p], lr=1.0)
    sched = build_scheduler(opt, "constant", 10, warmup_ratio=0.4, warmup_start_ratio=0.01)
    lrs = []
    for _ in range(6):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[:5] == pytest.approx([0.01, 0.2575, 0.505, 0.7525, 1.0]) and lrs[5] == 1.0
    assert _lrs("constant", warmup=0.4)[0] == pytest.approx(0.25)    # the default: lr / warmup steps
    with pytest.raises(ConfigError, match="warmup_start_ratio"):
        from recdistill.config import compose
        from recdistill.recipes.lifecycle import efficiency
        efficiency(compose("student", ["efficiency.warmup_start_ratio=2"]))
    with pytest.raises(ConfigError, match="warmup_start_ratio=0.01 has no effect with efficiency.warmup_ratio=0.0"):
        efficiency(compose("student", ["efficiency.warmup_start_ratio=0.01"]))   # no warmup to start


def test_constant_and_onecycle_and_bad_kind():
    assert _lrs("constant", warmup=0.0) == [1.0] * 10
    one = _lrs("onecycle", steps=20, warmup=0.3)
    assert max(one) == pytest.approx(1.0, rel=1e-3) and one[0] < 0.1
    with pytest.raises(ConfigError, match="cosine, onecycle, constant"):
        _lrs("linear")
