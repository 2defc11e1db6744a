"""A broken or stale model is an error, never a result: a checkpoint or ONNX file changed after it was written
(4 KB overwritten in the middle), a model with NaN weights, a served file deleted or replaced; and fewer than k
items left is said. Real files, the real CLI, the real app under uvicorn on loopback."""

from __future__ import annotations

import json
import shutil

import torch

from recdistill.cli import main
from recdistill.engine.integrity import checksum_path


def _copy_checkpoint(src, folder):
    folder.mkdir(parents=True, exist_ok=True)
    dst = folder / src.name if hasattr(src, "name") else folder / "model.ckpt"
    shutil.copy(src, dst)
    if checksum_path(src).is_file():
        shutil.copy(checksum_path(src), checksum_path(dst))
    return dst


def _overwrite_middle(path, size=4096):
    data = bytearray(path.read_bytes())
    middle = len(data) // 2
    data[middle:middle + size] = b"\x7f" * min(size, len(data) - middle)
    path.write_bytes(bytes(data))


def test_training_writes_a_checksum_beside_the_selected_checkpoint(tiny_recommenders):
    from pathlib import Path

    for key in ("student", "distill"):
        ckpt = Path(tiny_recommenders[key])
        assert checksum_path(ckpt).is_file() and checksum_path(ckpt).read_text().split()[1] == ckpt.name


def test_a_damaged_checkpoint_is_refused_by_every_command(tiny_recommenders, tmp_path, capsys):
    from pathlib import Path

    ckpt = _copy_checkpoint(Path(tiny_recommenders["distill"]), tmp_path)
    _overwrite_middle(ckpt)
    data = ["--data", str(tiny_recommenders["prepared"])]
    assert main(["recommend", str(ckpt), "--users", "1", *data]) == 2
    assert "has changed since it was written" in capsys.readouterr().err
    assert main(["export-model", str(ckpt), "--out", str(tmp_path / "onnx"), *data]) == 2
    assert str(ckpt) in capsys.readouterr().err and not (tmp_path / "onnx").exists()


def test_nan_weights_are_an_error_not_an_empty_answer(tiny_recommenders, tmp_path, capsys):
    state = torch.load(tiny_recommenders["student"], map_location="cpu", weights_only=True)
    state["state_dict"]["model.item_embedding.weight"][5:9] = float("nan")
    nan_ckpt = tmp_path / "nan.ckpt"          # written by hand: no checksum record, as an old file would be
    torch.save(state, nan_ckpt)
    assert main(["recommend", str(nan_ckpt), "--users", "1", "--data", str(tiny_recommenders["prepared"])]) == 2
    assert "non-finite scores" in capsys.readouterr().err
    assert main(["serve", str(nan_ckpt), "--port", "1", "--data", str(tiny_recommenders["prepared"])]) == 2
    assert "non-finite scores" in capsys.readouterr().err



def test_a_damaged_onnx_model_is_refused(tiny_recommenders, tmp_path, capsys):
    folder = tmp_path / "onnx"
    assert main(["export-model", str(tiny_recommenders["distill"]), "--out", str(folder)]) == 0
    meta = json.loads((folder / "model.json").read_text())
    assert len(meta["sha256"]) == 64 and meta["epoch"] is not None and meta["created"]
    _overwrite_middle(folder / "model.onnx", 64)
    assert main(["recommend", str(folder), "--users", "1"]) == 2
    assert "model.onnx has changed since it was written" in capsys.readouterr().err
    (folder / "model.json").write_text("{not json")
    assert main(["recommend", str(folder), "--users", "1"]) == 2
    assert "not valid JSON" in capsys.readouterr().err


def test_fewer_than_k_items_left_is_said(tiny_recommenders, capsys):
    history = [str(i) for i in range(1, 39)]          # 38 of the 40 items seen: 2 left
    assert main(["recommend", str(tiny_recommenders["student"]), "--history", *history, "-k", "5"]) == 0
    out = capsys.readouterr().out
    assert "only 2 of the 5 items asked for" in out


def test_health_turns_stale_when_the_model_file_is_replaced_and_metadata_says_what_serves(tiny_recommenders, tmp_path):
    from recdistill.serve.http_app import build_app
    from recdistill.serve.source import open_model
    from serve_helpers import call, running

    folder = tmp_path / "served"
    assert main(["export-model", str(tiny_recommenders["distill"]), "--out", str(folder)]) == 0
    with running(build_app(open_model(folder), reopen=lambda: open_model(folder))) as base:
        status, meta = call(base, "GET", "/metadata")
        recorded = json.loads((folder / "model.json").read_text())
        assert status == 200 and meta["sha256"] == recorded["sha256"] and meta["dataset_fingerprint"]
        assert meta["epoch"] == recorded["epoch"] and meta["kind"] == "distill" and meta["created"]
        assert call(base, "GET", "/health")[0] == 200
        status, body = call(base, "POST", "/recommend", {"history": [str(i) for i in range(1, 39)], "k": 5})
        assert status == 200 and len(body["items"]) == 2 and "only 2 items are left" in body["note"]
        # the file is replaced under the server: health says so (503) until a reload serves the new file
        assert main(["export-model", str(tiny_recommenders["student"]), "--out", str(folder)]) == 0
        status, body = call(base, "GET", "/health")
        assert status == 503 and body["status"] == "stale" and "replaced" in body["problem"]
        assert call(base, "POST", "/reload")[0] == 200
        status, body = call(base, "GET", "/health")
        assert status == 200 and body["kind"] == "student"
        shutil.rmtree(folder)
        status, body = call(base, "GET", "/health")
        assert status == 503 and "gone" in body["problem"]
        assert call(base, "POST", "/recommend", {"user": 1, "k": 3})[0] == 200   # still answers from memory


def test_outputs_follow_the_umask_and_models_find_their_data_from_any_folder(tiny_recommenders, tmp_path, monkeypatch):
    import os

    from recdistill.data.prepared import load_prepared

    old = os.umask(0o022)
    try:
        folder = tmp_path / "onnx"
        assert main(["export-model", str(tiny_recommenders["student"]), "--out", str(folder)]) == 0
        assert (folder.stat().st_mode & 0o777) == 0o755
        assert ((folder / "model.json").stat().st_mode & 0o777) == 0o644
    finally:
        os.umask(old)
    monkeypatch.chdir(tmp_path)
    relative = os.path.relpath(tiny_recommenders["prepared"], tmp_path)
    assert os.path.isabs(load_prepared(relative).meta()["path"])
