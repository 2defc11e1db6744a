"""`recdistill export-model`: ONNX Runtime scores as torch does (student and distilled student), the
exported folder runs in a fresh process without recdistill, and a bad output folder is refused."""

import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from recdistill.cli import main
from recdistill.serve.scorers import OnnxScorer, TorchScorer, pad_histories
from recdistill.student.checkpoint import load_recommender


@pytest.fixture(scope="module")
def exported(tiny_recommenders, tmp_path_factory):
    root = tmp_path_factory.mktemp("exported")
    folders = {}
    for kind in ("student", "distill"):
        folders[kind] = root / kind
        assert main(["export-model", str(tiny_recommenders[kind]), "--out", str(folders[kind])]) == 0
    return folders


@pytest.mark.parametrize("kind", ["student", "distill"])
def test_onnx_runtime_matches_torch(tiny_recommenders, exported, kind):
    rec = load_recommender(tiny_recommenders[kind])
    rng = np.random.default_rng(0)
    histories = [rng.integers(1, 41, size=n) for n in (1, 3, 8, 12, 5)]  # 12 > max_len: cut to the last 8
    padded, _ = pad_histories(histories, rec.model.max_len)
    expected = TorchScorer(rec.model)(padded)
    with torch.no_grad():  # and the training model itself
        direct = rec.model.score_all(rec.model.user_representation(torch.from_numpy(padded))).numpy()
    got = OnnxScorer(exported[kind] / "model.onnx")(padded)
    assert got.shape == (5, 41) and np.isneginf(got[:, 0]).all()
    assert np.abs(got[:, 1:] - expected[:, 1:]).max() < 1e-4
    assert np.abs(got[:, 1:] - direct[:, 1:]).max() < 1e-4
    meta = json.loads((exported[kind] / "model.json").read_text())
    assert meta["kind"] == kind and meta["max_len"] == 8 and meta["num_items"] == 40


def test_loads_in_a_fresh_process_without_recdistill(exported, tiny_recommenders):
    folder = exported["distill"]
    script = f"""
import sys, json
import numpy as np, onnxruntime as ort, pyarrow.parquet as pq
sys.modules['recdistill'] = None  # any import of recdistill would now fail
session = ort.InferenceSession({str(folder / 'model.onnx')!r}, providers=['CPUExecutionProvider'])
history = np.zeros((1, 8), dtype=np.int64); history[0, -3:] = [3, 4, 5]
scores = session.run(['scores'], {{'history': history}})[0]
titles = pq.read_table({str(folder / 'items.parquet')!r}).column('title').to_pylist()
best = int(np.argmax(scores[0]))
print(json.dumps({{'best': best, 'title': titles[best - 1], 'score': float(scores[0, best])}}))
"""
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, env={"PATH": ""})
    assert out.returncode == 0, out.stderr
    answer = json.loads(out.stdout)
    rec = load_recommender(tiny_recommenders["distill"])
    expected = TorchScorer(rec.model)(np.array([[0, 0, 0, 0, 0, 3, 4, 5]]))[0]
    assert answer["best"] == int(np.argmax(expected)) and answer["title"] == f"Movie {answer['best']}"
    assert abs(answer["score"] - float(expected.max())) < 1e-4


def test_refuses_a_folder_that_is_not_an_export(tiny_recommenders, tmp_path, capsys):
    (tmp_path / "keep.txt").write_text("mine")
    assert main(["export-model", str(tiny_recommenders["student"]), "--out", str(tmp_path)]) == 2
    assert "not an earlier `export-model` folder" in capsys.readouterr().err
    assert (tmp_path / "keep.txt").read_text() == "mine"
    assert main(["export-model", str(tiny_recommenders["student"]), "--out", str(tmp_path / "x"),
                 "--format", "tflite"]) == 2
    assert "choose one of: onnx" in capsys.readouterr().err


def test_torchscript_is_refused_with_the_reason(tiny_recommenders, tmp_path, capsys):
    """export-model no longer writes TorchScript (deprecated by PyTorch; recommend/serve never read it), and
    an old TorchScript folder is a clear error, not a traceback."""
    assert main(["export-model", str(tiny_recommenders["student"]), "--out", str(tmp_path / "ts"),
                 "--format", "torchscript"]) == 2
    assert "PyTorch has deprecated TorchScript" in capsys.readouterr().err and not (tmp_path / "ts").exists()
    old = tmp_path / "old-ts"
    old.mkdir()
    (old / "model.pt").write_bytes(b"x")
    (old / "model.json").write_text("{}")
    for command in (["recommend", str(old), "--users", "1"], ["serve", str(old)]):
        assert main(command) == 2
        assert "is a TorchScript export" in capsys.readouterr().err
