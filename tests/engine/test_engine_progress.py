"""Progress for logs: a line at a steady interval with rate and ETA; the metric-logging interval follows
the run's length; a real training run printed to a non-terminal gets lines, not a bar."""

import io
import time

import pandas as pd

from recdistill.cli import main
from recdistill.engine.progress import LineProgress, log_interval
from recdistill.report.format import percent


def test_line_progress_prints_rate_and_eta_on_a_timer():
    out = io.StringIO()
    bar = LineProgress(total=10, desc="export", unit="rows", every=0.05, stream=out)
    time.sleep(0.12)  # nothing done yet: the timer still reports, and says so
    bar.update(5)
    time.sleep(0.12)
    bar.close()
    lines = out.getvalue().splitlines()
    assert any("first one still running" in line for line in lines)
    assert any("[export] 5/10 rows" in line and "rows/s" in line and "ETA" in line for line in lines)
    assert lines[-1].endswith("(done)") and len(lines) >= 3


def test_log_interval_follows_the_run_length():
    assert log_interval(10) == 1          # a 10-step teacher run: every step
    assert log_interval(1600) == 16       # about 100 points
    assert log_interval(10 ** 6) == 50    # at most every 50 steps
    assert log_interval(float("inf")) == 50


def test_percent_keeps_small_shares_visible():
    assert percent(0.0005) == "0.05 %" and percent(0.0) == "0 %" and percent(0.5) == "50.0 %"


def test_training_in_a_log_prints_lines_and_logs_every_step(tiny_prepared, tmp_path, capsys):
    runs = tmp_path / "runs"
    assert main(["train", "student", f"prepared={tiny_prepared}", f"paths.runs_dir={runs}", "student.hidden_size=16",
                 "student.num_blocks=1", "student.max_len=10", "train.batch_size=8", "train.max_epochs=1",
                 "run.progress_bar=true", "eval.sampled_negatives=10"]) == 0
    out = capsys.readouterr().out  # pytest's capture is not a terminal
    assert "[epoch 1/1]" in out and "batches/s" in out and "(done)" in out and "[validation]" in out
    assert "v_num" not in out and "\r" not in out
    (run,) = [p for p in runs.iterdir() if p.is_dir()]
    frame = pd.read_csv(run / "logs" / "csv" / "metrics.csv")
    steps = frame["train/loss_step"].notna().sum()
    assert steps >= 5  # 6 batches in this run: logged every step, not every 10
