"""Two-process DDP on the CPU (Lightning's strategy, gloo) trains an epoch and writes what one process
writes; evaluating one checkpoint with two processes gives exactly the single-process metrics."""

import json
import os
import re
import subprocess
import sys

import pytest

TINY = ["student.hidden_size=16", "student.num_blocks=1", "student.max_len=10", "train.batch_size=8",
        "train.max_epochs=1", "run.progress_bar=false", "eval.sampled_negatives=10", "efficiency.accelerator=cpu"]
DDP = ["efficiency.strategy=ddp", "efficiency.devices=2"]


def recdistill(*args, cwd):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    env.pop("RECDISTILL_RUN_DIR", None)
    done = subprocess.run([sys.executable, "-m", "recdistill", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def files(run):
    """The run's files by name; a checkpoint's name carries its val metric, which two processes training on
    their halves of each batch need not reach to the fourth digit, so that part is left out."""
    return sorted(re.sub(r"val_ndcg@10=[0-9.]+", "val_ndcg@10=X", str(p.relative_to(run))) for p in run.rglob("*")
                  if p.is_file() and "tensorboard" not in p.parts and p.suffix != ".ckpt")


@pytest.mark.slow
def test_ddp_two_processes_on_cpu(tiny_prepared, tmp_path):
    single_runs, ddp_runs = tmp_path / "single", tmp_path / "ddp"
    common = [f"prepared={tiny_prepared}", *TINY]
    recdistill("train", "student", *common, f"paths.runs_dir={single_runs}", cwd=tmp_path)
    recdistill("train", "student", *common, f"paths.runs_dir={ddp_runs}", *DDP, cwd=tmp_path)

    (single,) = [p for p in single_runs.iterdir() if p.is_dir()]
    (ddp,) = [p for p in ddp_runs.iterdir() if p.is_dir()]  # the child process reused the same folder
    assert files(single) == files(ddp)
    assert len(list((ddp / "checkpoints").glob("student-epoch=00-val_ndcg@10=*.ckpt"))) == 1
    m1 = json.loads((single / "metrics.json").read_text())
    m2 = json.loads((ddp / "metrics.json").read_text())
    assert m1.keys() == m2.keys()
    assert m2["val/users"] == 30 and m2["test/users"] == 30  # padding repeats dropped after the gather
    assert len((ddp_runs / "results.jsonl").read_text().splitlines()) == 1  # written by rank 0 only

    (ckpt,) = (single / "checkpoints").glob("student-*.ckpt")
    recdistill("eval", "student", str(ckpt), f"paths.runs_dir={ddp_runs}", *DDP, "efficiency.accelerator=cpu",
               "run.progress_bar=false", cwd=tmp_path)
    (evaluated,) = [p for p in ddp_runs.iterdir() if p.name.endswith("-eval")]
    two = json.loads((evaluated / "metrics.json").read_text())
    assert two == {k: v for k, v in m1.items() if k in two}
