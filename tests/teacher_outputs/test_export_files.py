"""The teacher-output files: writing with the SASRec ranker, resuming after an interruption, and the
reader's checks against a prepared dataset (bad input -> clear error, nothing overwritten)."""

import hashlib
import json
import shutil

import numpy as np
import pandas as pd
import pyarrow.parquet as pq
import pytest
import torch

from recdistill.data.prepared import load_prepared
from recdistill.errors import RecdistillError
from recdistill.teacher_outputs import (
    CandidateSource,
    SASRecRanker,
    export_teacher_outputs,
    load_teacher_outputs,
    plan_positions,
)
from recdistill.student.sasrec import SASRec
from tests.conftest import make_tiny_prepared


def dataset_info(data):
    return {"name": data.name, "fingerprint": data.fingerprint, "num_items": data.num_items, "num_users": data.num_users}


def make_ranker(data, seed=0):
    torch.manual_seed(seed)
    model = SASRec(data.num_items, max_len=10, hidden_size=16, num_blocks=1)
    return SASRecRanker(model, name="tiny-sasrec", config_hash=f"h{seed}")


class Interrupted(Exception):
    pass


class StopAfter:
    """A ranker that dies after `calls` calls to rank(), like a process killed mid-export."""

    def __init__(self, ranker, calls):
        self.ranker, self.calls = ranker, calls

    def identity(self):
        return self.ranker.identity()

    def item_embeddings(self):
        return self.ranker.item_embeddings()

    def rank(self, histories, candidates, top_k):
        if self.calls == 0:
            raise Interrupted
        self.calls -= 1
        return self.ranker.rank(histories, candidates, top_k)


def write(data, ranker, out, top_k=5, shard_rows=64, batch_size=32, mode="all"):
    plan = plan_positions(data.train, mode)
    return export_teacher_outputs(ranker, data.train, dataset_info(data), out, plan,
                                  CandidateSource("all", data.num_items), top_k=top_k, shard_rows=shard_rows,
                                  batch_size=batch_size, progress=False)


def read_rows(out):
    files = sorted(out.glob("topk-*.parquet"))
    return pd.concat([pq.read_table(f).to_pandas() for f in files], ignore_index=True)


def folder_digest(path):
    h = hashlib.sha256()
    for f in sorted(path.rglob("*")):
        if f.is_file():
            h.update(f.name.encode() + f.read_bytes())
    return h.hexdigest()


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return load_prepared(make_tiny_prepared(tmp_path_factory.mktemp("data") / "tiny"))


def test_export_writes_the_format(data, tmp_path):
    out = tmp_path / "teacher"
    manifest = write(data, make_ranker(data), out)
    plan = plan_positions(data.train, "all")
    assert manifest["complete"] and manifest["positions"]["rows"] == len(plan)
    assert sum(s["rows"] for s in manifest["shards"]) == len(plan)
    rows = read_rows(out)
    assert list(zip(rows.user, rows.position)) == list(zip(plan.users, plan.positions))
    for user, pos, items, conf in zip(rows.user, rows.position, rows["items"], rows.confidences):
        assert len(items) == 5 and abs(sum(conf) - 1) < 1e-5
        assert not set(items) & set(data.train[user][:pos])  # seen items excluded
        assert all(np.diff(conf) <= 1e-7)  # best first
    teacher = load_teacher_outputs(out, data.train, data.fingerprint, data.num_items)
    assert teacher.embeddings.shape == (data.num_items + 1, 16) and float(teacher.embeddings[0].abs().sum()) == 0
    u, p = int(plan.users[3]), int(plan.positions[3])
    assert teacher.lookup(u, np.array([p, 10_000])).tolist()[1] == -1
    assert teacher.lookup(u, np.array([p]))[0] >= 0


def test_last_positions_and_limit(data):
    plan = plan_positions(data.train, "last", last_n=2)
    assert all(len(data.train[u]) - p <= 2 for u, p in zip(plan.users, plan.positions))
    assert len(plan_positions(data.train, "all", limit=7)) == 7


def test_resume_after_interruption_has_no_duplicate_or_missing_rows(data, tmp_path):
    ranker = make_ranker(data)
    reference = tmp_path / "reference"
    write(data, ranker, reference)
    out = tmp_path / "resumed"
    with pytest.raises(Interrupted):
        write(data, StopAfter(ranker, calls=5), out)  # 64-row shards, 32-row batches: dies inside shard 2
    manifest = json.loads((out / "manifest.json").read_text())
    assert not manifest["complete"] and len(manifest["shards"]) == 2
    kept = {s["file"]: (out / s["file"]).stat().st_mtime_ns for s in manifest["shards"]}
    with pytest.raises(RecdistillError, match="incomplete"):
        load_teacher_outputs(out, data.train, data.fingerprint, data.num_items)
    write(data, ranker, out)
    for name, mtime in kept.items():
        assert (out / name).stat().st_mtime_ns == mtime  # finished shards kept, not rewritten
    a, b = read_rows(reference), read_rows(out)
    assert len(b) == len(a) and not b.duplicated(["user", "position"]).any()
    assert a[["user", "position"]].equals(b[["user", "position"]])
    assert all(np.array_equal(x, y) for x, y in zip(a["items"], b["items"]))
    # a complete export is left alone
    before = folder_digest(out)
    write(data, ranker, out)
    assert folder_digest(out) == before


def test_resume_with_another_config_is_refused_and_changes_nothing(data, tmp_path):
    out = tmp_path / "teacher"
    with pytest.raises(Interrupted):
        write(data, StopAfter(make_ranker(data), calls=1), out)
    before = folder_digest(out)
    with pytest.raises(RecdistillError, match="different export.*top_k"):
        write(data, make_ranker(data), out, top_k=3)
    with pytest.raises(RecdistillError, match="different export.*teacher"):
        write(data, make_ranker(data, seed=1), out)
    assert folder_digest(out) == before


def test_export_into_a_foreign_folder_is_refused(data, tmp_path):
    out = tmp_path / "busy"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(RecdistillError, match="not empty"):
        write(data, make_ranker(data), out)
    assert (out / "notes.txt").read_text() == "mine"


@pytest.fixture(scope="module")
def exported(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("export") / "teacher"
    write(data, make_ranker(data), out)
    return out


def test_reader_refuses_another_dataset(data, exported, tmp_path):
    with pytest.raises(RecdistillError, match="fingerprint"):
        load_teacher_outputs(exported, data.train, "some-other-dataset", data.num_items)
    other = load_prepared(make_tiny_prepared(tmp_path / "other", num_items=50, seed=3))
    with pytest.raises(RecdistillError, match="fingerprint|items"):
        load_teacher_outputs(exported, other.train, other.fingerprint, other.num_items)
    with pytest.raises(RecdistillError, match="exported for 40 items, but the prepared dataset has 50"):
        load_teacher_outputs(exported, data.train, data.fingerprint, 50)


def test_reader_refuses_missing_or_truncated_shards(data, exported, tmp_path):
    missing = tmp_path / "missing"
    shutil.copytree(exported, missing)
    (missing / "topk-00001.parquet").unlink()
    with pytest.raises(RecdistillError, match="topk-00001.parquet .*missing"):
        load_teacher_outputs(missing, data.train, data.fingerprint, data.num_items)
    truncated = tmp_path / "truncated"
    shutil.copytree(exported, truncated)
    table = pq.read_table(truncated / "topk-00000.parquet")
    pq.write_table(table.slice(0, 5), truncated / "topk-00000.parquet")
    with pytest.raises(RecdistillError, match="topk-00000.parquet is damaged .*SHA-256.*rerun `recdistill export`"):
        load_teacher_outputs(truncated, data.train, data.fingerprint, data.num_items)
    # an export written before checksums were recorded: the row count still catches it
    manifest = json.loads((truncated / "manifest.json").read_text())
    for entry in manifest["shards"]:
        del entry["sha256"]
    (truncated / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RecdistillError, match="has 5 rows, the manifest says 64"):
        load_teacher_outputs(truncated, data.train, data.fingerprint, data.num_items)
    with pytest.raises(RecdistillError, match="not a teacher-output folder"):
        load_teacher_outputs(tmp_path / "nowhere", data.train, data.fingerprint, data.num_items)


def test_reader_refuses_positions_outside_the_sequences(data, exported):
    shorter = [seq[:3] for seq in data.train]
    with pytest.raises(RecdistillError, match="outside that user's training sequence"):
        load_teacher_outputs(exported, shorter, data.fingerprint, data.num_items)


def test_ensemble_ranker_averages_log_probabilities_and_concatenates_embeddings(data):
    one, two = make_ranker(data, seed=0), make_ranker(data, seed=1)
    ensemble = SASRecRanker([one.model, two.model], name="pair", config_hash="pair")
    histories = [data.history("val", u) for u in data.users()[:6]]
    expected = (one.scores(histories).log_softmax(1) + two.scores(histories).log_softmax(1)) / 2
    got = ensemble.scores(histories)
    assert torch.equal(torch.isinf(got), torch.isinf(expected))  # seen items and padding stay excluded
    finite = torch.isfinite(expected)
    assert torch.allclose(got[finite], expected[finite], atol=1e-5)
    items, _ = ensemble.rank(histories, None, 5)
    assert np.array_equal(items, expected.topk(5, dim=1).indices.numpy())
    emb = ensemble.item_embeddings()
    assert emb.shape == (data.num_items + 1, 32) and torch.equal(emb[0], torch.zeros(32))
    assert torch.equal(emb[1:, :16], one.item_embeddings()[1:]) and torch.equal(emb[1:, 16:], two.item_embeddings()[1:])


def test_ensemble_members_from_different_catalogues_are_refused():
    torch.manual_seed(0)
    with pytest.raises(RecdistillError, match="different catalogues"):
        SASRecRanker([SASRec(20, max_len=5, hidden_size=8, num_blocks=1), SASRec(21, max_len=5, hidden_size=8, num_blocks=1)],
                     name="bad", config_hash="bad")
