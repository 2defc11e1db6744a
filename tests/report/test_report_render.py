"""The report renders every section from run folders and pipeline folders the test writes."""

from __future__ import annotations

import json

import pytest
from lightning.pytorch.loggers import CSVLogger
from omegaconf import OmegaConf

from recdistill.cli import main
from recdistill.errors import RecdistillError
from recdistill.engine import RunDir, StageTracker, describe_environment, measure_stage
from recdistill.report import render_report

SECTIONS = ("## Headline", "## Runs", "## Summary", "## Metrics by protocol", "### Full-catalogue ranking",
            "## Time and peak memory per stage", "## Training curves", "## Environment",
            "## Appendix: every recorded metric")


def write_run(runs_dir, name, metrics, epochs=3, seed=42):
    """A run folder as the training commands write it: resolved config, metrics, measured stages,
    environment, and Lightning's CSV log."""
    run = RunDir.create(runs_dir, name)
    run.write_config(OmegaConf.to_yaml(OmegaConf.create({"choices": {"dataset": "ml-100k", "train": name},
                                                         "efficiency": {"seed": seed}})))
    logger = CSVLogger(save_dir=str(run.logs), name="", version="csv")
    tracker = StageTracker(warmup_steps=0)
    with measure_stage(tracker, "fit"):
        for epoch in range(epochs):
            with measure_stage(tracker, f"epoch_{epoch}") as stage:
                for step in range(4):
                    logger.log_metrics({"train/loss": 2.0 - 0.1 * (4 * epoch + step), "epoch": epoch},
                                       step=4 * epoch + step)
                    stage.add({"sequences": 128})
            logger.log_metrics({"val/ndcg@10": 0.02 * (epoch + 1), "val/hr@10": 0.05 * (epoch + 1),
                                "epoch": epoch}, step=4 * epoch + 3)
    with measure_stage(tracker, "test") as stage:
        stage.add({"sequences": 943})
    logger.save()
    run.finish(name, metrics, tracker.records, describe_environment())
    return run.path


@pytest.fixture
def three_runs(tmp_path):
    student = write_run(tmp_path, "student", {"val/ndcg@10": 0.050, "test/ndcg@10": 0.040, "test/hr@10": 0.080,
                                              "best_epoch": 2})
    teacher = write_run(tmp_path, "teacher", {"val/cand20_hr@1": 0.30, "test/cand20_hr@1": 0.28, "train_steps": 10,
                                              "val/cand20_users": 16, "test/cand20_users": 16}, epochs=1)
    distill = write_run(tmp_path, "distill", {"val/ndcg@10": 0.055, "test/ndcg@10": 0.044, "test/hr@10": 0.079,
                                              "best_epoch": 1, "teacher_coverage": 0.0005})
    return student, teacher, distill


def test_comparison_report_has_every_section_values_and_change(three_runs, tmp_path):
    student, _, distill = three_runs
    files = render_report([student, distill], tmp_path / "out")
    text = files.markdown.read_text()
    for section in SECTIONS:
        assert section in text, section
    # side by side, with the change against the first run (absolute and relative)
    row = next(line for line in text.splitlines() if line.startswith("| `test/ndcg@10`"))
    assert "0.0400" in row and "0.0440" in row and "+0.0040 (+10.0%)" in row
    assert "higher" in text and "lower" in text  # test/ndcg@10 up, test/hr@10 down
    assert "One run each: whether the difference is more than training noise is unknown" in text
    # stages folded: 3 epochs in one row, peak memory measured
    assert "epoch ×3" in text and "sequences/s" in text
    # curves: one PNG per run plus the comparison; all referenced and non-empty PNG files
    names = sorted(p.name for p in files.images)
    assert {"headline-ndcg10.png", "cost-per-stage.png", "compare-val_ndcg_at_10.png"} <= set(names)
    assert len(names) == 5 and sum(name.startswith("curves-") for name in names) == 2
    for image in files.images:
        assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert f"]({image.name})" in text
    html = files.html.read_text()
    assert html.startswith("<!DOCTYPE html>") and "<table>" in html and "<img" in html and "<h2>Environment</h2>" in html
    assert "torch" in text  # package versions in the environment table


def test_pipeline_folder_reports_the_three_models(three_runs, tmp_path):
    student, teacher, distill = three_runs
    pipe = tmp_path / "pipeline-smoke"
    pipe.mkdir()
    stages = {"prepare": {"status": "done", "seconds": 1.0, "key": "a", "outputs": {"data": "x"}}}
    for stage, path in (("student", student), ("teacher", teacher), ("distill", distill)):
        stages[stage] = {"status": "done", "seconds": 2.5, "peak_rss_mb": 900.0, "key": "k", "outputs": {"run": str(path)}}
    (pipe / "manifest.json").write_text(json.dumps({"profile": "smoke", "stages": stages}))
    files = render_report([pipe])
    assert files.markdown == pipe / "report" / "report.md"
    text = files.markdown.read_text()
    for section in SECTIONS:
        assert section in text, section
    headers = [line for line in text.splitlines() if line.startswith("| metric")]
    assert any("| student | teacher | distilled |" in h and "distilled vs student" in h for h in headers)
    # the teacher's candidate metrics in their own table, with its users, chance, budget; coverage readable
    teacher_part = text.split("### Teacher over its 20 candidates")[1].split("##")[0]
    assert "test/cand20_hr@1" in teacher_part and "0.2800" in teacher_part and "teacher: val 16, test 16" in teacher_part
    assert "NDCG@10 0.2272" in teacher_part
    full_part = text.split("### Full-catalogue ranking")[1].split("##")[0]
    assert "cand20" not in full_part
    assert "trained 10 optimizer steps" in text and "scored on 16 test and 16 val users" in text
    assert "cover 0.05 % of the training targets" in text
    # integer rows as integers, their change as a count, never a percentage
    assert "| `best_epoch` | 2 | – | 1 | -1 |" in text
    assert "Pipeline stages" in text and "| prepare | done |" in text


def test_report_command_and_bad_input(three_runs, tmp_path, capsys):
    student, _, _ = three_runs
    assert main(["report", str(student), "--out", str(tmp_path / "one")]) == 0
    assert "report.md" in capsys.readouterr().out
    assert (tmp_path / "one" / "report.html").is_file()
    assert main(["report", str(tmp_path / "nope")]) == 2
    assert "is not a folder" in capsys.readouterr().err
    (tmp_path / "empty").mkdir()
    assert main(["report", str(tmp_path / "empty")]) == 2
    assert "not a run folder" in capsys.readouterr().err


def test_runs_over_seeds_are_aggregated_and_paired(tmp_path):
    """Two kinds of run on seeds 0, 1, 2: each kind gets mean and interval, the second is paired with the first."""
    alone = [0.10, 0.12, 0.11]
    distilled = [0.12, 0.13, 0.14]
    paths = [write_run(tmp_path, "student", {"test/ndcg@10": v}, epochs=1, seed=s) for s, v in enumerate(alone)]
    paths += [write_run(tmp_path, "distill", {"test/ndcg@10": v}, epochs=1, seed=s) for s, v in enumerate(distilled)]
    text = render_report(paths, tmp_path / "out").markdown.read_text()
    assert "## Over seeds" in text and "student (seeds 0, 1, 2)" in text
    row = next(line for line in text.splitlines() if line.startswith("| `test/ndcg@10` | 0.1100"))
    assert "0.0852 – 0.1348" in row  # 0.11 ± 4.3027 * 0.01 / sqrt(3)
    paired = next(line for line in text.splitlines() if line.startswith("| `test/ndcg@10` | +0.0200"))
    assert "0.0742" in paired and "0.25" in paired and "3/3" in paired


def test_same_config_and_seed_twice_is_an_error(tmp_path):
    paths = [write_run(tmp_path, "student", {"test/ndcg@10": 0.1}, epochs=1, seed=0) for _ in range(2)]
    with pytest.raises(RecdistillError, match="same config and seed 0"):
        render_report(paths, tmp_path / "out")


def test_a_distilled_run_that_validation_gave_no_teacher_is_called_the_student_retrained(three_runs, tmp_path):
    import json

    student, _, distill = three_runs
    curve = [{"weight": 0.0, "gamma": 0.0, "val_ndcg@10": 0.055, "epochs": 3},
             {"weight": 0.8, "gamma": 0.2, "val_ndcg@10": 0.050, "epochs": 2, "stopped_behind_at_epoch": 1}]
    (distill / "weight_selection.json").write_text(json.dumps({"grid": [[0, 0], [0.8, 0.2]], "curve": curve,
                                                               "chosen_weight": 0.0, "chosen_gamma": 0.0}))
    text = render_report([student, distill], tmp_path / "out").markdown.read_text()
    assert "is the student trained again by the distillation stage" in text
    assert "Validation kept kd.weight=0, ed.gamma=0" in text and "stopped: behind the best arm" in text


def test_the_headline_advice_follows_what_was_measured():
    from recdistill.report.selection import advice

    worse = {"users": 64, "teacher_minus_student": {"ndcg@10": -0.4, "ci95_low": -0.5, "ci95_high": -0.3}}
    assert advice(worse, ["seed 0: the student alone", "seed 1: the student alone"], None).startswith(
        "Use the student alone") and "train it longer" in advice(worse, ["seed 0: the student alone"], None)
    assert advice(None, ["seed 0: kd.weight 0.8, ed.gamma 0"], (0.01, 0.002, 0.02)).startswith("Use the distilled")
    within = advice(worse, ["seed 0: kd.weight 0.8, ed.gamma 0"], (0.01, -0.02, 0.03))
    assert "within noise" in within and "never below the student on validation" in within
    assert advice(None, ["seed 0: kd.weight 0.8, ed.gamma 0"], None).startswith("One seed")


def test_the_weight_grid_is_paired_over_seeds(tmp_path):
    """Three seeds' searches: each arm minus the student alone, paired by seed, with its interval; the arm
    that leads on every seed by the same margin is called beyond noise, one that leads on average only is not."""
    import json

    paths = []
    for seed, (alone, kd8, kd3) in enumerate([(0.10, 0.12, 0.09), (0.11, 0.13, 0.13), (0.12, 0.14, 0.11)]):
        run = write_run(tmp_path, "distill", {"test/ndcg@10": kd8}, epochs=1, seed=seed)
        curve = [{"arm": "student alone", "weight": 0.0, "gamma": 0.0, "val_ndcg@10": alone, "epochs": 3},
                 {"weight": 0.3, "gamma": 0.0, "val_ndcg@10": kd3, "epochs": 2,
                  **({"stopped_behind_at_epoch": 1} if seed == 0 else {})},
                 {"weight": 0.8, "gamma": 0.0, "val_ndcg@10": kd8, "epochs": 3}]
        (run / "weight_selection.json").write_text(json.dumps({"curve": curve, "chosen_weight": 0.8,
                                                               "chosen_gamma": 0.0, "chosen_arm": "distilled"}))
        paths.append(run)
    text = render_report(paths, tmp_path / "out").markdown.read_text()
    assert "### The weight grid over seeds" in text
    row8 = next(line for line in text.splitlines() if line.startswith("| 0.8 | 0 | 3 |"))
    assert "+0.0200 [+0.0200, +0.0200]" in row8 and "0 of 3" in row8
    row3 = next(line for line in text.splitlines() if line.startswith("| 0.3 | 0 | 3 |"))
    assert "+0.0000" in row3 and "1 of 3" in row3
    assert "kd.weight 0.8, ed.gamma 0 beats the student alone on validation beyond seed-to-seed noise" in text
    # one seed alone: no table (nothing to pair)
    assert "The weight grid over seeds" not in render_report(paths[:1], tmp_path / "one").markdown.read_text()
