"""SASRec, GRU4Rec and Caser (DLLM2Rec's three students) share one contract and go through the same recipes:
trained, evaluated, distilled, exported to ONNX and used by `recommend`, with no workload code that knows
which student it has."""

from __future__ import annotations

import json

import numpy as np
import onnxruntime as ort
import pytest
import torch

from conftest import make_tiny_prepared
from recdistill.cli import main
from recdistill.errors import ConfigError
from recdistill.student.caser import Caser, CaserSettings
from recdistill.student.distilled import distilled
from recdistill.student.gru4rec import GRU4Rec
from recdistill.student.sasrec import SASRec

STUDENTS = ["sasrec", "gru4rec", "caser"]
TINY = {"sasrec": ["student.hidden_size=16", "student.num_blocks=1"],
        "gru4rec": ["student.hidden_size=16"],
        "caser": ["student.hidden_size=16", "student.window=4"]}
COMMON = ["run.progress_bar=false", "efficiency.seed=0", "student.max_len=8", "train.max_epochs=2",
          "train.batch_size=16", "eval.sampled_negatives=10"]


def models():
    torch.manual_seed(0)
    return [SASRec(30, max_len=8, hidden_size=16, num_blocks=1), GRU4Rec(30, max_len=8, hidden_size=16),
            Caser(30, max_len=8, hidden_size=16, window=4),
            distilled(GRU4Rec)(30, llm_embeddings=torch.randn(31, 6), gamma=0.5, max_len=8, hidden_size=16),
            distilled(Caser)(30, llm_embeddings=torch.randn(31, 6), gamma=0.5, max_len=8, hidden_size=16, window=4)]


@pytest.mark.parametrize("model", models(), ids=lambda m: type(m).__name__)
def test_the_shared_contract_holds(model):
    model.eval()
    seq = torch.tensor([[0, 0, 0, 3, 4, 5, 6, 7], [0, 0, 0, 0, 0, 0, 9, 2]])
    with torch.no_grad():
        hidden = model(seq)
        assert hidden.shape == (2, 8, 16)
        assert hidden[0, :3].abs().sum() == 0 and hidden[1, :6].abs().sum() == 0     # padding stays zero
        assert torch.allclose(model(seq[:, 3:]), hidden[:, 3:], atol=1e-5)          # padding length does not matter
        changed = seq.clone()
        changed[0, -1] = 11
        assert torch.allclose(model(changed)[0, :-1], hidden[0, :-1], atol=1e-6)    # causal
        assert torch.allclose(model.user_representation(seq), hidden[:, -1], atol=1e-6)
        assert model.score_all(hidden[:, -1]).shape == (2, 31)


def test_bad_caser_settings_are_clear_errors():
    with pytest.raises(ConfigError, match="filter_sizes"):
        CaserSettings(hidden_size=8, window=3, filters=2, filter_sizes=(2, 4), vertical_filters=1, dropout=0.1)
    with pytest.raises(ConfigError, match="student.window"):
        CaserSettings(hidden_size=8, window=0, filters=2, filter_sizes=(1,), vertical_filters=1, dropout=0.1)


@pytest.fixture(scope="module")
def teacher_outputs(tmp_path_factory):
    root = tmp_path_factory.mktemp("teacher")
    prepared = make_tiny_prepared(root / "data" / "tiny")
    assert main(["train", "student", f"prepared={prepared}", f"paths.runs_dir={root / 'runs'}", *COMMON,
                 *TINY["sasrec"], "student.hidden_size=24"]) == 0
    ckpt = next((root / "runs").glob("*/checkpoints/student-epoch=*.ckpt"))
    assert main(["export", f"prepared={prepared}", f"paths.runs_dir={root / 'runs'}", "run.progress_bar=false",
                 "teacher=student", f"teacher.checkpoint={ckpt}", "export.candidates=all", "export.top_k=5",
                 f"export.out_dir={root / 'outputs'}"]) == 0
    return prepared, root / "outputs"


@pytest.mark.parametrize("name", STUDENTS)
def test_each_student_trains_distils_exports_and_recommends(name, teacher_outputs, tmp_path, capsys):
    prepared, outputs = teacher_outputs
    base = [f"prepared={prepared}", f"student={name}", *COMMON, *TINY[name]]
    assert main(["train", "student", *base, f"paths.runs_dir={tmp_path / 'student'}"]) == 0
    assert main(["train", "distill", *base, f"paths.runs_dir={tmp_path / 'distill'}",
                 f"distill.teacher_outputs={outputs}"]) == 0
    for kind in ("student", "distill"):
        run = next((tmp_path / kind).glob("*/metrics.json")).parent
        metrics = json.loads((run / "metrics.json").read_text())
        assert 0 < metrics["val/ndcg@10"] <= 1 and 0 <= metrics["test/ndcg@10"] <= 1
        ckpt = next((run / "checkpoints").glob(f"{kind}-epoch=*.ckpt"))
        assert main(["eval", kind, str(ckpt)]) == 0
        out = tmp_path / f"{kind}-onnx"
        assert main(["export-model", str(ckpt), "--out", str(out)]) == 0
        history = np.array([[0, 0, 0, 0, 3, 4, 5, 6]], dtype=np.int64)
        onnx_scores = ort.InferenceSession(str(out / "model.onnx")).run(None, {"history": history})[0]
        assert np.isfinite(onnx_scores[0, 1:]).all() and onnx_scores[0, 0] == -np.inf
        capsys.readouterr()
        assert main(["recommend", str(ckpt), "--users", "1", "-k", "3"]) == 0
        assert len([line for line in capsys.readouterr().out.splitlines() if line.strip()]) >= 3


def test_caser_over_every_position_equals_conv2d_on_each_window():
    """Caser scores each span once per sequence (a sliding max, a 1-D convolution); the paper's form runs
    ``nn.Conv2d`` on every window's image. The two must agree, padding and all."""
    torch.manual_seed(0)
    model = Caser(50, max_len=12, hidden_size=16, window=5, filter_sizes=(2, 3, 5), vertical_filters=2).eval()
    seq = torch.randint(1, 51, (3, 12))
    seq[0, :7] = 0
    seq[1, :11] = 0
    windows = torch.nn.functional.pad(seq, (4, 0))[:, torch.arange(12)[:, None] + torch.arange(5)[None]]
    with torch.no_grad():
        reference = conv2d_per_window(model, windows.reshape(-1, 5)).view(3, 12, 16) * (seq > 0).unsqueeze(-1)
        assert torch.allclose(model(seq), reference, atol=1e-6)


def conv2d_per_window(model: Caser, windows: torch.Tensor) -> torch.Tensor:
    """``[M, window]`` item ids -> ``[M, H]`` with ``nn.Conv2d`` on each window's image, as the paper and
    DLLM2Rec's code compute it."""
    F = torch.nn.functional
    real = (windows > 0).unsqueeze(-1).to(model.item_embedding.weight.dtype)
    image = (model.embed_inputs(windows) * real).unsqueeze(1)                  # [M, 1, window, H]
    pooled = [F.relu(conv(image)).squeeze(3).amax(2) for conv in model.horizontal]
    vertical = model.vertical(image).flatten(1)                                # [M, vertical_filters * H]
    return F.relu(model.to_hidden(model.dropout(torch.cat([*pooled, vertical], 1))))
