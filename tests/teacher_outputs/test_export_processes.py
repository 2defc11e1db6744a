"""Export across processes (issue 16): the ranks deal the shards between them, each writes its own shards,
rank 0 writes the one manifest at the end, and a stopped multi-process export resumes to exactly the files
of a one-process export.

The fast tests run the ranks as threads with a real barrier (the writer's code paths, no process start-up);
the slow ones start real processes: Lightning Fabric's DDP strategy on the CPU (gloo), through the CLI.
"""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import torch

from recdistill.cli import main
from recdistill.data.prepared import load_prepared
from recdistill.engine.processes import Processes
from recdistill.teacher_outputs import CandidateSource, SASRecRanker, export_teacher_outputs, plan_positions
from recdistill.student.sasrec import SASRec
from tests.conftest import make_tiny_prepared
from tests.teacher_outputs.test_export_files import Interrupted, StopAfter  # the ranker that dies mid-export
from tests.teacher_outputs.test_export_integrity import setup  # noqa: F401  (module fixture: tiny data, student, 1-process export)


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return load_prepared(make_tiny_prepared(tmp_path_factory.mktemp("ranks") / "tiny"))


def ranker(data):
    torch.manual_seed(0)
    return SASRecRanker(SASRec(data.num_items, max_len=10, hidden_size=16, num_blocks=1), "tiny", "h0")


def write(data, out, ranker, processes=Processes()):
    info = {"name": data.name, "fingerprint": data.fingerprint, "num_items": data.num_items, "num_users": data.num_users}
    return export_teacher_outputs(ranker, data.train, info, out, plan_positions(data.train),
                                  CandidateSource("all", data.num_items), top_k=5, shard_rows=16, batch_size=8,
                                  progress=False, processes=processes)


def as_ranks(world, target):
    """Run ``target(processes)`` for each rank in its own thread with a real barrier; a rank that fails
    breaks the barrier (as a dead process makes the others' collective calls fail). Returns the errors."""
    barrier = threading.Barrier(world, timeout=60)
    errors = [None] * world

    def run(rank):
        try:
            target(Processes(rank, world, barrier.wait))
        except BaseException as exc:  # noqa: BLE001 (recorded and checked by the test)
            errors[rank] = exc
            barrier.abort()

    threads = [threading.Thread(target=run, args=(r,)) for r in range(world)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def shard_bytes(out):
    return {f.name: f.read_bytes() for f in sorted(out.glob("topk-*.parquet"))}


def test_ranks_write_disjoint_shards_and_the_same_files_as_one_process(data, tmp_path):
    one = write(data, tmp_path / "one", ranker(data))
    manifests = {}
    rankers = [ranker(data) for _ in range(3)]  # built here: torch's global seed is not thread-safe
    errors = as_ranks(3, lambda p: manifests.__setitem__(p.rank, write(data, tmp_path / "three", rankers[p.rank], p)))
    assert errors == [None, None, None]
    assert shard_bytes(tmp_path / "three") == shard_bytes(tmp_path / "one")
    assert manifests[0]["shards"] == manifests[1]["shards"] == manifests[2]["shards"] == one["shards"]
    assert not list((tmp_path / "three").glob(".progress-rank-*"))  # merged into the manifest, then removed


def test_a_stopped_rank_leaves_a_resumable_export(data, tmp_path):
    out = tmp_path / "out"
    write(data, tmp_path / "one", ranker(data))

    rankers = [ranker(data), StopAfter(ranker(data), 5)]  # built here: torch's global seed is not thread-safe

    def stop_rank_1(p):
        write(data, out, rankers[p.rank], p)

    errors = as_ranks(2, stop_rank_1)
    assert isinstance(errors[1], Interrupted) and isinstance(errors[0], threading.BrokenBarrierError)
    manifest = json.loads((out / "manifest.json").read_text())
    assert not manifest["complete"] and manifest["shards"] == []  # rank 0 never reached the end
    assert list(out.glob(".progress-rank-*"))                      # but each rank recorded its shards
    resumed = write(data, out, ranker(data))  # resume with another number of processes: one
    assert resumed["complete"] and shard_bytes(out) == shard_bytes(tmp_path / "one")


# --- real processes: Lightning Fabric's DDP strategy on the CPU (gloo), through the CLI ------------------

def recdistill(args, **popen):
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.Popen([sys.executable, "-m", "recdistill", *args], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, **popen)


@pytest.mark.slow
def test_two_processes_write_exactly_the_one_process_export_and_resume_after_a_kill(setup, tmp_path):  # noqa: F811
    args = [a for a in setup["args"] if not a.startswith("export.shard_rows")]
    two = tmp_path / "two"
    done = recdistill([*args, "export.shard_rows=64", f"export.out_dir={two}", "export.devices=2"])
    out, err = done.communicate(timeout=300)
    assert done.returncode == 0, err[-3000:]
    assert "Starting with 2 processes" in out + err
    assert shard_bytes(two) == shard_bytes(setup["out"])
    assert json.loads((two / "manifest.json").read_text())["shards"] == \
        json.loads((setup["out"] / "manifest.json").read_text())["shards"]

    # the same through torchrun (its layout is used; export.devices stays at 1)
    tr = tmp_path / "torchrun"
    done = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2", "-m", "recdistill",
                           *args, "export.shard_rows=64", f"export.out_dir={tr}"],
                          env=dict(os.environ, OMP_NUM_THREADS="1"), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    assert shard_bytes(tr) == shard_bytes(setup["out"])

    # kill both ranks mid-way (small shards, one row per teacher call, so there is time), then resume
    killed = tmp_path / "killed"
    slow = [*args, "export.shard_rows=4", "export.batch_size=1", f"export.out_dir={killed}", "export.devices=2"]
    proc = recdistill(slow, start_new_session=True)
    deadline = time.time() + 240
    while time.time() < deadline and not list(killed.glob(".progress-rank-*")) and proc.poll() is None:
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.communicate()
    assert not json.loads((killed / "manifest.json").read_text())["complete"]
    resumed = recdistill(slow)
    out, err = resumed.communicate(timeout=300)
    assert resumed.returncode == 0, err[-3000:]
    assert "resuming" in out
    one = tmp_path / "one"  # the same settings in one process (the batch size changes the scores' last bits)
    assert main([*args, "export.shard_rows=4", "export.batch_size=1", f"export.out_dir={one}"]) == 0
    assert shard_bytes(killed) == shard_bytes(one)
