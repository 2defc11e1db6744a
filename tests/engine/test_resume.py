"""Interrupted training runs resume from their last checkpoint, in the same run folder, and end with the
metrics an uninterrupted run with the same seed ends with (exactly)."""

import json

import lightning as L
import pytest
import torch

from recdistill.cli import main
from recdistill.recipes.config import load_config
from recdistill.recipes.student import train_student
from recdistill.report.runs import run_state

TINY = ["student.hidden_size=16", "student.num_blocks=1", "student.max_len=10", "train.batch_size=8",
        "run.progress_bar=false", "eval.sampled_negatives=10", "train.max_epochs=3",
        "train.early_stopping_patience=0"]


class Crash(L.Callback):
    """Stops training with an error as epoch ``epoch`` starts (after the checkpoints of the epoch before)."""

    def __init__(self, epoch: int):
        self.epoch = epoch

    def on_train_epoch_start(self, trainer, pl_module):
        if trainer.current_epoch == self.epoch:
            raise RuntimeError("simulated crash")


def _runs(folder):
    return sorted(p for p in folder.iterdir() if p.is_dir())


def final_weights(run):
    """The weights after the last epoch (the metrics alone may come from an epoch before the crash)."""
    return torch.load(run / "checkpoints" / "last.ckpt", map_location="cpu", weights_only=True)["state_dict"]


def assert_same_weights(a, b):
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_student_resumes_to_the_same_metrics(tiny_prepared, tmp_path, capsys):
    overrides = [f"prepared={tiny_prepared}", *TINY]
    straight = train_student(load_config("student", [*overrides, f"paths.runs_dir={tmp_path / 'a'}"]))

    runs = tmp_path / "b"
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_student(load_config("student", [*overrides, f"paths.runs_dir={runs}"]), extra_callbacks=[Crash(2)])
    (run,) = _runs(runs)
    assert (run / "checkpoints" / "last.ckpt").is_file() and not (run / "metrics.json").exists()
    state = json.loads((run / "state.json").read_text())
    assert state["state"] == "failed" and state["error"] == "RuntimeError: simulated crash"
    assert main(["report", str(run), "--out", str(tmp_path / "report")]) == 0
    assert "state failed: RuntimeError: simulated crash" in (tmp_path / "report" / "report.md").read_text()

    assert main(["train", "student", f"train.resume={run}"]) == 0
    assert _runs(runs) == [run]  # continued in the same folder
    state = json.loads((run / "state.json").read_text())
    assert state["state"] == "complete" and state["resumed"] == 1
    resumed = json.loads((run / "metrics.json").read_text())
    assert resumed["epochs_trained"] == 3
    assert resumed == straight.metrics
    assert_same_weights(final_weights(run), final_weights(straight.run_dir))


def test_resume_refuses_changed_settings(tiny_prepared, tmp_path, capsys):
    runs = tmp_path / "runs"
    with pytest.raises(RuntimeError):
        train_student(load_config("student", [f"prepared={tiny_prepared}", f"paths.runs_dir={runs}", *TINY]),
                      extra_callbacks=[Crash(1)])
    (run,) = _runs(runs)
    assert main(["train", "student", f"train.resume={run}", "train.lr=0.5"]) == 2
    err = capsys.readouterr().err
    assert "train.lr=0.5" in err and "keeps its own settings" in err
    assert json.loads((run / "state.json").read_text())["state"] == "failed"  # refused: nothing was changed
    assert main(["train", "student", f"train.resume={tmp_path}"]) == 2
    assert "is not a run folder" in capsys.readouterr().err


@pytest.mark.slow
def test_pipeline_resumes_a_killed_training_stage(tmp_path, cache_dir, capsys):
    """A pipeline killed (SIGKILL: nothing can be written) during its student stage continues that run."""
    import os
    import signal
    import subprocess
    import sys
    import time
    from pathlib import Path

    args = ["pipeline", "--profile", "smoke", "pipeline.until=student", f"paths.runs_dir={tmp_path / 'runs'}",
            f"paths.data_dir={tmp_path / 'data'}", f"paths.cache_dir={cache_dir}", "student:train.max_epochs=3",
            "student:train.early_stopping_patience=0", "student:run.progress_bar=false"]
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2] / "src")}
    child = subprocess.Popen([sys.executable, "-m", "recdistill", *args], cwd=tmp_path, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    folder = tmp_path / "runs" / "pipeline-smoke"
    deadline = time.time() + 120
    while not list(folder.glob("*_student/checkpoints/last.ckpt")) and time.time() < deadline and child.poll() is None:
        time.sleep(0.1)
    child.send_signal(signal.SIGKILL)
    child.wait()
    (run,) = [p.parents[1] for p in folder.glob("*_student/checkpoints/last.ckpt")]
    assert not (run / "metrics.json").exists()
    assert json.loads((run / "state.json").read_text())["state"] == "running"  # nothing could record the kill
    assert run_state(run).startswith("interrupted (killed")

    assert main(args) == 0
    out = capsys.readouterr().out
    assert f"resuming {run.name} from its last checkpoint" in out
    assert [p for p in folder.iterdir() if p.name.endswith("_student")] == [run]
    assert json.loads((run / "metrics.json").read_text())["epochs_trained"] == 3


def test_evaluations_refuse_train_resume(tiny_prepared, tmp_path, capsys):
    result = train_student(load_config("student", [f"prepared={tiny_prepared}", f"paths.runs_dir={tmp_path}", *TINY,
                                                   "train.max_epochs=1"]))
    assert json.loads((result.run_dir / "state.json").read_text())["state"] == "complete"
    (best,) = (result.run_dir / "checkpoints").glob("student-*.ckpt")
    assert main(["eval", "student", str(best), f"train.resume={result.run_dir}"]) == 2
    assert "train.resume is for training commands" in capsys.readouterr().err
