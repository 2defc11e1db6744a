"""`recdistill pipeline --seeds`: one student and distilled run per seed, prepare once, the teacher and its
export once (first seed) unless asked per seed, each seed skipped when done, a report over seeds."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from pathlib import Path

import pytest

from recdistill.cli import main
from recdistill.engine import RunDir, describe_environment
from recdistill.errors import ConfigError
from recdistill.pipeline import ORDER, STAGES
from recdistill.pipeline.plan import build_plan
from recdistill.recipes.seeds import parse_seeds
from recdistill.report import render_report

NEEDS = {n: STAGES[n].needs for n in ORDER}


def _entries(units) -> list[str]:
    return [u.entry for u in units]


def _reads(units, entry: str) -> set[str]:
    return {e for _, e in next(u for u in units if u.entry == entry).reads}


def test_plan_shares_prepare_and_the_teacher_and_runs_students_per_seed():
    units = build_plan(ORDER, NEEDS, [3, 1], teacher_per_seed=False)
    assert _entries(units) == ["prepare", "student@seed3", "student@seed1", "teacher@seed3", "export@seed3",
                               "distill@seed3", "distill@seed1", "report"]
    assert _reads(units, "teacher@seed3") == {"prepare", "student@seed3"}      # the first seed's student
    assert _reads(units, "distill@seed1") == {"prepare", "student@seed1", "export@seed3"}  # its own student, the shared export
    assert _reads(units, "report") == {"student@seed3", "student@seed1", "teacher@seed3", "distill@seed3",
                                       "distill@seed1"}
    assert {u.seed for u in units if u.stage == "prepare"} == {None}


def test_plan_per_seed_teacher_and_without_seeds():
    units = build_plan(ORDER, NEEDS, [0, 1], teacher_per_seed=True)
    assert _reads(units, "export@seed1") == {"prepare", "student@seed1", "teacher@seed1"}
    assert _reads(units, "distill@seed1") == {"prepare", "student@seed1", "export@seed1"}
    # no seed list: the plain stage names of a single-seed pipeline (manifests written before stay valid)
    assert _entries(build_plan(ORDER, NEEDS, None, False)) == list(ORDER)


@pytest.mark.parametrize("text,message", [("0,x", "comma-separated integers"), ("1,1", "repeat a seed"),
                                          (",", "empty")])
def test_bad_seed_lists_are_refused(text, message):
    with pytest.raises(ConfigError, match=message):
        parse_seeds(text)


@pytest.fixture
def folder():
    path = Path(tempfile.mkdtemp(prefix="recdistill-seeds-"))
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def args(folder, cache_dir):
    return ["pipeline", "--profile", "smoke", f"paths.runs_dir={folder / 'runs'}",
            f"paths.data_dir={folder / 'data'}", f"paths.cache_dir={cache_dir}"]


def test_seed_given_twice_is_an_error_before_anything_is_written(args, folder, capsys):
    assert main(["pipeline", "--seeds", "0,1", *args[1:], "efficiency.seed=3"]) == 2
    assert "not both" in capsys.readouterr().err
    assert main(["pipeline", "--seeds", "0,a", *args[1:]]) == 2
    assert "comma-separated integers" in capsys.readouterr().err
    assert not (folder / "runs").exists()


def _status(out: str) -> dict[str, str]:
    return {m[1]: m[2] for m in re.finditer(r"^\[\d+/\d+\] (\S+)\s+(.*)$", out, flags=re.M)}


def _ran(out: str) -> set[str]:
    return {e for e, line in _status(out).items() if line.startswith("done in")}


def test_students_per_seed_are_skipped_when_done(args, folder, capsys):
    """Stops after the student stage (pipeline.until=student), one batch each: the fast version of the
    slow end-to-end test below."""
    fast = ["pipeline.until=student", "student:train.limit_train_batches=1"]
    assert main(["pipeline", "--seeds", "0,1", *args[1:], *fast]) == 0
    out = capsys.readouterr().out
    assert _ran(out) == {"prepare", "student@seed0", "student@seed1"}, out
    stages = json.loads((folder / "runs" / "pipeline-smoke" / "manifest.json").read_text())["stages"]
    assert stages["student@seed0"]["outputs"]["run"] != stages["student@seed1"]["outputs"]["run"]
    assert "efficiency.seed=1" in stages["student@seed1"]["overrides"]
    # one of those seeds again: nothing to do (a new seed running alone is in the slow test)
    assert main(["pipeline", "--seeds", "1", *args[1:], *fast]) == 0
    out = capsys.readouterr().out
    assert not _ran(out) and set(_status(out)) == {"prepare", "student@seed1"}, out
    assert all(line.startswith("skipped") for line in _status(out).values())


def _run(runs_dir: Path, kind: str, seed: int, ndcg: float) -> str:
    run = RunDir.create(runs_dir, kind)
    run.write_config(f"choices:\n  train: {kind}\nefficiency:\n  seed: {seed}\n")
    run.finish(kind, {"test/ndcg@10": ndcg, "val/ndcg@10": ndcg + 0.01}, [], describe_environment())
    return run.path.name


def test_pipeline_report_aggregates_the_latest_plan_over_seeds(folder):
    entries = {"student@seed0": _run(folder, "student", 0, 0.040), "student@seed1": _run(folder, "student", 1, 0.046),
               "distill@seed0": _run(folder, "distill", 0, 0.050), "distill@seed1": _run(folder, "distill", 1, 0.052),
               "student": _run(folder, "student", 42, 0.9)}   # from an earlier single-seed plan: left out
    stages = {e: {"status": "done", "outputs": {"run": path}, "seconds": 1.0} for e, path in entries.items()}
    manifest = {"format_version": 1, "profile": "t", "stages": stages, "entries": [e for e in entries if "@" in e]}
    (folder / "manifest.json").write_text(json.dumps(manifest))
    text = render_report([folder], folder / "report").markdown.read_text()
    assert "### student (seeds 0, 1)" in text and "0.9000" not in text
    assert "One seed (0) against its own student" in text
    assert "### distilled (seeds 0, 1) against student (seeds 0, 1), paired by seed" in text
    # test/ndcg@10: differences 0.010 and 0.006, mean +0.0080, both seeds better
    row = next(line for line in text.splitlines() if line.startswith("| `test/ndcg@10` | +0.0080"))
    assert row.rstrip().endswith("| 2/2 |")


@pytest.mark.slow
def test_smoke_pipeline_over_two_seeds_then_a_third(args, folder, capsys):
    # one epoch-slice each: the numbers mean nothing, the bookkeeping is what is checked
    fast = ["student:train.limit_train_batches=1", "distill:train.limit_train_batches=1", "export:export.limit=10"]
    pipeline = folder / "runs" / "pipeline-smoke"
    assert main(["pipeline", "--seeds", "0,1", *args[1:], *fast]) == 0
    out = capsys.readouterr().out
    assert _ran(out) == {"prepare", "student@seed0", "student@seed1", "teacher@seed0", "export@seed0",
                         "distill@seed0", "distill@seed1", "report"}, out
    stages = json.loads((pipeline / "manifest.json").read_text())["stages"]
    assert "efficiency.seed=1" in stages["student@seed1"]["overrides"]
    assert "efficiency.seed=0" in stages["teacher@seed0"]["overrides"]
    teacher_reads = stages["student@seed0"]["outputs"]["checkpoint"]
    assert any(o.endswith(teacher_reads) for o in stages["teacher@seed0"]["overrides"])
    export = stages["export@seed0"]["outputs"]["teacher_outputs"]
    assert any(o.endswith(export) for o in stages["distill@seed1"]["overrides"])  # the shared export
    for seed in (0, 1):  # each run really used its seed
        run = pipeline / stages[f"distill@seed{seed}"]["outputs"]["run"]
        assert re.search(rf"^  seed: {seed}$", (run / "config.yaml").read_text(), flags=re.M)
    report = (pipeline / "report" / "report.md").read_text()
    assert "## Over seeds" in report and "### student (seeds 0, 1)" in report
    assert "### distilled (seeds 0, 1) against student (seeds 0, 1), paired by seed" in report
    assert "paired t-test p" in report

    # a third seed: only its runs and the report are new; the teacher is not trained again
    assert main(["pipeline", "--seeds", "0,1,2", *args[1:], *fast]) == 0
    out = capsys.readouterr().out
    assert _ran(out) == {"student@seed2", "distill@seed2", "report"}, out
    assert _status(out)["teacher@seed0"].startswith("skipped")
    report = (pipeline / "report" / "report.md").read_text()
    assert "### distilled (seeds 0, 1, 2) against student (seeds 0, 1, 2), paired by seed" in report


def test_a_profiles_own_seed_yields_to_the_seed_list(folder, cache_dir):
    """The cpu profile pins efficiency.seed=0 for a single run; with --seeds the list decides each unit's seed
    (the teacher takes the first), instead of refusing a seed the user never typed."""
    from recdistill.config import compose
    from recdistill.pipeline.runner import compose_stage, stage_overrides

    assert main(["pipeline", "--profile", "cpu", "--seeds", "4,5", "pipeline.until=prepare",
                 f"paths.runs_dir={folder / 'runs'}", f"paths.data_dir={folder / 'data'}",
                 f"paths.cache_dir={cache_dir}"]) == 0
    manifest = json.loads((folder / "runs" / "pipeline-cpu" / "manifest.json").read_text())
    assert manifest["entries"] == ["prepare"]
    cfg = compose("pipeline", ["profile=cpu", "pipeline.seeds=[4,5]"])
    for stage, seed in (("student", 5), ("teacher", 4)):
        upstream = {"prepare": {"data_dir": str(folder / "data")}, "student": {"checkpoint": "student.ckpt"}}
        items = stage_overrides(stage, cfg, folder, [], {}, upstream, seed)
        assert compose_stage(stage, items).efficiency.seed == seed
