"""One loader for every recommender checkpoint: kind detection, the right model, exact re-evaluation,
clear errors for the wrong kind or another dataset, and no run folder left behind by a refusal."""

import json

import pytest
import torch

from recdistill.cli import main
from recdistill.student.distilled import DistilledSASRec
from recdistill.errors import RecdistillError
from recdistill.data.prepared import load_prepared
from recdistill.recipes.student import evaluate_student
from recdistill.student.checkpoint import load_recommender, load_student, load_student_for
from recdistill.student.sasrec import SASRec
from tests.conftest import make_tiny_prepared


def test_kinds_and_models(tiny_recommenders):
    student = load_recommender(tiny_recommenders["student"])
    distilled = load_recommender(tiny_recommenders["distill"])
    assert student.kind == "student" and type(student.model) is SASRec
    assert distilled.kind == "distill" and isinstance(distilled.model, DistilledSASRec)
    assert distilled.model.uses_llm and distilled.model.llm_embeddings.shape == (41, 24)
    for rec in (student, distilled):
        assert rec.num_items == 40 and rec.dataset_fingerprint.startswith("tiny-") and not rec.model.training
    # the rebuilt distilled model holds the saved weights, LLM buffer included
    saved = torch.load(tiny_recommenders["distill"], map_location="cpu", weights_only=True)["state_dict"]
    assert torch.equal(distilled.model.llm_embeddings, saved["model.llm_embeddings"])
    # load_student (used by teacher=student export) now takes a distilled student too
    model, meta = load_student(tiny_recommenders["distill"])
    assert meta["kind"] == "distill" and isinstance(model, DistilledSASRec)


@pytest.mark.parametrize("kind", ["student", "distill"])
def test_eval_reproduces_training_metrics_exactly(tiny_recommenders, tmp_path, kind):
    result = evaluate_student(tiny_recommenders[kind], [f"paths.runs_dir={tmp_path}", "run.progress_bar=false"],
                              kind=kind)
    trained = tiny_recommenders[f"{kind}_metrics"]
    shared = [k for k in result.metrics if k in trained]
    assert len(shared) > 20
    for key in shared:
        assert result.metrics[key] == trained[key], key
    assert result.run_dir.name.endswith(f"_{kind}-eval")


def test_wrong_kind_is_a_clear_error_and_leaves_no_run(tiny_recommenders, tmp_path, capsys):
    runs = tmp_path / "runs"
    code = main(["eval", "student", str(tiny_recommenders["distill"]), f"paths.runs_dir={runs}"])
    err = capsys.readouterr().err
    assert code == 2 and "is a distilled student" in err and "recdistill eval distill" in err
    code = main(["eval", "distill", str(tiny_recommenders["student"]), f"paths.runs_dir={runs}"])
    assert code == 2 and "recdistill eval student" in capsys.readouterr().err
    assert not runs.exists()


def test_eval_distill_refuses_training_knobs(tiny_recommenders, tmp_path, capsys):
    runs = tmp_path / "runs"
    code = main(["eval", "distill", str(tiny_recommenders["distill"]), f"paths.runs_dir={runs}",
                 "efficiency.accumulate_grad_batches=4"])
    assert code == 2
    assert "efficiency.accumulate_grad_batches has no effect in `recdistill eval distill`" in capsys.readouterr().err
    assert not runs.exists()


def test_other_dataset_is_a_clear_error_and_leaves_no_run(tiny_recommenders, tmp_path, capsys):
    other = make_tiny_prepared(tmp_path / "other", num_items=50, seed=5)
    runs = tmp_path / "runs"
    code = main(["eval", "distill", str(tiny_recommenders["distill"]), f"prepared={other}", f"paths.runs_dir={runs}"])
    err = capsys.readouterr().err
    assert code == 2 and "fingerprint" in err and str(other) in err
    assert not runs.exists()
    # the loader's dataset check (PreparedData.check_matches): fingerprint first, then the catalogue size
    with pytest.raises(RecdistillError, match="fingerprint"):
        load_recommender(tiny_recommenders["student"], data=load_prepared(other))
    with pytest.raises(RecdistillError, match="has 40 items"):
        load_prepared(other).check_matches(load_recommender(tiny_recommenders["student"]).path, None, 40)
    with pytest.raises(RecdistillError, match="no teacher checkpoint given"):
        load_student_for(None, load_prepared(other), "teacher checkpoint")


def test_not_a_checkpoint(tmp_path):
    with pytest.raises(RecdistillError, match="no student checkpoint"):
        load_recommender(tmp_path / "missing.ckpt")
    bad = tmp_path / "bad.ckpt"
    torch.save({"state_dict": {}}, bad)
    with pytest.raises(RecdistillError, match="is not a recommender checkpoint"):
        load_recommender(bad)
    (tmp_path / "text.ckpt").write_text(json.dumps({"a": 1}))
    with pytest.raises(RecdistillError, match="is not a recdistill recommender checkpoint, or truncated"):
        load_recommender(tmp_path / "text.ckpt")


@pytest.mark.slow
def test_ml100k_student_and_distilled_reload_exactly(tmp_path, cache_dir):
    """On real ML-100K (first 200 users, a small SASRec, one epoch): `eval student` and `eval distill`
    give the training runs' metrics exactly, and `recommend` works on both checkpoints."""
    from omegaconf import OmegaConf

    from recdistill.config import compose
    from recdistill.config.compose import conf_root
    from recdistill.teacher_outputs.build import ExportSettings, export_files, student_ranker
    from recdistill.recipes.distill import train_distill
    from recdistill.recipes.student import train_student

    common = [f"paths.data_dir={tmp_path / 'data'}", f"paths.cache_dir={cache_dir}", f"paths.runs_dir={tmp_path / 'runs'}",
              "dataset.limit=200", "student.hidden_size=16", "student.num_blocks=1", "train.max_epochs=1",
              "run.progress_bar=false"]
    student = train_student(compose("student", common))
    data = load_prepared(tmp_path / "data" / "ml-100k")
    export = ExportSettings(**{**OmegaConf.to_container(OmegaConf.load(conf_root() / "export" / "default.yaml")),
                               "positions": "last", "last_n": 3, "candidates": "all", "top_k": 5,
                               "progress_bar": False})
    ranker = student_ranker([student.artefacts["best_checkpoint"]], data, True, "cpu")
    export_files(export, ranker, data, tmp_path / "outputs")
    distilled = train_distill(compose("distill", [*common, f"distill.teacher_outputs={tmp_path / 'outputs'}"]))
    for kind, trained in (("student", student), ("distill", distilled)):
        checkpoint = trained.artefacts["best_checkpoint"]
        again = evaluate_student(checkpoint, [f"paths.runs_dir={tmp_path / 'runs'}", "run.progress_bar=false"],
                                 kind=kind).metrics
        assert all(again[k] == v for k, v in trained.metrics.items() if k in again), kind
        out = tmp_path / f"{kind}.jsonl"
        assert main(["recommend", checkpoint, "--users", "1,2", "--out", str(out)]) == 0
        assert len(out.read_text().splitlines()) == 20
