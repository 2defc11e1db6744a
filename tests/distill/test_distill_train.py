"""`recdistill train distill` end to end on a tiny dataset: a tiny SASRec teacher is trained, exported with
the SASRec ranker and distilled; bad teacher outputs are refused before any run folder is written."""

import json
import re
import shutil

import pytest
from omegaconf import OmegaConf

from recdistill.cli import main
from recdistill.config import compose
from recdistill.config.compose import conf_root
from recdistill.data.prepared import load_prepared
from recdistill.recipes.distill import train_distill
from recdistill.errors import RecdistillError
from recdistill.teacher_outputs.build import ExportSettings, export_files, student_ranker
from recdistill.recipes.student import train_student
from tests.conftest import make_tiny_prepared

TINY = ["student.max_len=8", "student.hidden_size=16", "student.num_blocks=1", "train.max_epochs=2",
        "train.batch_size=16", "run.progress_bar=false", "eval.sampled_negatives=10"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("distill")
    prepared = make_tiny_prepared(root / "data" / "tiny")
    common = [f"+prepared={prepared}", f"paths.runs_dir={root / 'runs'}", *TINY]
    teacher = train_student(compose("student", [*common, "student.hidden_size=24", "run.name=teacher"]))
    data = load_prepared(prepared)
    export = export_settings(candidates="all", top_k=5, shard_rows=50, progress_bar=False)
    out = root / "teacher_outputs"
    export_files(export, student_ranker([teacher.artefacts["best_checkpoint"]], data, True, "cpu"), data, out)
    return {"root": root, "common": common, "outputs": out, "data": data}


def export_settings(**changes) -> ExportSettings:
    """The export group's YAML defaults with ``changes``."""
    return ExportSettings(**{**OmegaConf.to_container(OmegaConf.load(conf_root() / "export" / "default.yaml")),
                             **changes})


def test_train_distill_end_to_end(setup):
    result = train_distill(compose("distill", [*setup["common"], f"distill.teacher_outputs={setup['outputs']}"]))
    m = result.metrics
    assert m["teacher_coverage"] == pytest.approx(1.0)
    assert 0 <= m["val/ndcg@10"] <= 1 and 0 <= m["test/ndcg@10"] <= 1
    assert result.info["teacher"]["embedding_dim"] == 24 and result.info["teacher"]["top_k"] == 5
    record = json.loads((setup["root"] / "runs" / "results.jsonl").read_text().splitlines()[-1])
    assert record["workload"] == "distill" and record["teacher_outputs"]["rows"] > 0


def test_cli_refuses_teacher_outputs_of_another_dataset(setup, tmp_path, capsys):
    other = make_tiny_prepared(tmp_path / "other", num_items=50, seed=5)
    runs = tmp_path / "runs"
    code = main(["train", "distill", f"prepared={other}", f"paths.runs_dir={runs}", *TINY,
                 f"distill.teacher_outputs={setup['outputs']}"])
    assert code == 2
    assert "fingerprint" in capsys.readouterr().err
    assert not runs.exists()  # refused before a run folder was made


def test_missing_shard_and_missing_embeddings_are_clear_errors(setup, tmp_path):
    broken = tmp_path / "broken"
    shutil.copytree(setup["outputs"], broken)
    (broken / "topk-00000.parquet").unlink()
    with pytest.raises(RecdistillError, match="missing"):
        train_distill(compose("distill", [*setup["common"], f"distill.teacher_outputs={broken}"]))
    no_emb = tmp_path / "no_emb"
    shutil.copytree(setup["outputs"], no_emb)
    manifest = json.loads((no_emb / "manifest.json").read_text())
    manifest["embeddings"] = None
    (no_emb / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(RecdistillError, match="distill.ed.gamma=0"):
        train_distill(compose("distill", [*setup["common"], f"distill.teacher_outputs={no_emb}"]))
    with pytest.raises(RecdistillError, match="teacher_outputs is not set"):
        train_distill(compose("distill", setup["common"]))


def test_teacher_checkpoint_list_exports_an_ensemble(setup, tmp_path):
    """teacher.checkpoint=[a, b]: one export whose embeddings are both members' side by side, under an
    identity of its own (so it never resumes into a single member's export)."""
    data = setup["data"]
    single = next(setup["root"].glob("runs/*teacher*/checkpoints/student-*.ckpt"))
    export = export_settings(candidates="all", top_k=5, shard_rows=50, progress_bar=False)
    one = student_ranker([str(single)], data, True, "cpu")
    pair = student_ranker([str(single), str(single)], data, True, "cpu")
    assert pair.identity()["config_hash"] != one.identity()["config_hash"]
    manifest = export_files(export, pair, data, tmp_path / "pair")
    assert manifest["embeddings"]["dim"] == 48
    # two copies of one model: the same ranking as the model alone
    histories = [data.history("val", u) for u in data.users()]
    assert (pair.rank(histories, None, 5)[0] == one.rank(histories, None, 5)[0]).all()
    with pytest.raises(RecdistillError, match="teacher.checkpoint"):
        student_ranker([], data, True, "cpu")


def test_bad_average_over_is_refused_before_a_run_folder(setup, tmp_path, capsys):
    runs = tmp_path / "runs"
    code = main(["train", "distill", f"prepared={setup['root'] / 'data' / 'tiny'}", f"paths.runs_dir={runs}", *TINY,
                 f"distill.teacher_outputs={setup['outputs']}", "distill.kd.average_over=users"])
    assert code == 2
    assert "average_over" in capsys.readouterr().err
    assert not runs.exists()


@pytest.mark.parametrize("override, message", [
    (["distill.dros.enabled=true", "distill.dros.beta=0"], r"distill.dros.beta=0(\.0)? is not valid; expected a number > 0"),
    (["distill.ed.tie=loose"], r"distill.ed.tie='loose' is not valid; choose one of: tied, untied"),
    (["distill.kd.negatives_avoid=session"], r"distill.kd.negatives_avoid='session' is not valid; choose one of: "
                                              r"history, window"),
    (["distill.dros.ranking_form=batch"], r"distill.dros.ranking_form='batch' is not valid; choose one of: "
                                           r"per_sample, published"),
    (["distill.base_loss_scale=published"], r"distill.base_loss_scale=published .* needs student.loss=bce"),
    # a SASRec teacher's scores are log-probabilities, not minus distances
    (["distill.kd.confidence=exp_neg_distance"], r"distill.kd.confidence=exp_neg_distance needs an export whose "
                                                 r"scores are minus distances \(teacher.export.ranking=grounded\); "
                                                 r".* teacher=student"),
])
def test_bad_distillation_settings_are_refused_before_a_run_folder(setup, tmp_path, capsys, override, message):
    """The recipe checks them once, before anything is written (the module no longer checks them)."""
    runs = tmp_path / "runs"
    code = main(["train", "distill", f"prepared={setup['root'] / 'data' / 'tiny'}", f"paths.runs_dir={runs}", *TINY,
                 f"distill.teacher_outputs={setup['outputs']}", *override])
    assert code == 2
    assert re.search(message, capsys.readouterr().err)
    assert not runs.exists()


PUBLISHED = ["student.loss=bce", "student.num_negatives=1", "distill.base_loss_scale=published",
             "distill.kd.negative_term=published", "distill.kd.negatives_avoid=window", "distill.dros.enabled=true",
             "distill.dros.ranking_form=published", "distill.kd.confidence=exp_neg_distance"]


def grounded_copy(outputs, tmp_path):
    """The export with its manifest saying its scores are minus distances (as a grounded LLM export's does)."""
    copy = tmp_path / "grounded"
    shutil.copytree(outputs, copy)
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["teacher"] = {**manifest["teacher"], "kind": "llm", "ranking": "grounded"}
    (copy / "manifest.json").write_text(json.dumps(manifest))
    return copy


def test_exp_neg_distance_confidences_from_a_grounded_export(setup, tmp_path):
    import numpy as np

    from recdistill.recipes.distill import load_teacher_for
    from recdistill.teacher_outputs.reader import load_teacher_outputs

    copy = grounded_copy(setup["outputs"], tmp_path)
    cfg = compose("distill", [*setup["common"], f"distill.teacher_outputs={copy}", "distill.kd.confidence=exp_neg_distance"])
    teacher = load_teacher_for(cfg, setup["data"])
    raw = load_teacher_outputs(copy, setup["data"].train, setup["data"].fingerprint, setup["data"].num_items,
                               with_scores=True)
    valid = raw.items > 0
    assert np.allclose(teacher.confidences, np.where(valid, np.exp(raw.scores) + 1e-8, 0.0), rtol=1e-6)
    # the default reads the export's softmax confidences
    plain = load_teacher_for(compose("distill", [*setup["common"], f"distill.teacher_outputs={copy}"]), setup["data"])
    assert np.array_equal(plain.confidences, raw.confidences)


def test_train_distill_with_every_published_form(setup, tmp_path):
    copy = grounded_copy(setup["outputs"], tmp_path)
    cfg = compose("distill", [*setup["common"], f"paths.runs_dir={tmp_path / 'runs'}", "train.max_epochs=1",
                              f"distill.teacher_outputs={copy}", *PUBLISHED])
    result = train_distill(cfg)
    assert 0 <= result.metrics["val/ndcg@10"] <= 1


def test_distill_resumes_to_the_same_metrics(setup, tmp_path):
    from recdistill.recipes.config import load_config
    from tests.engine.test_resume import Crash, assert_same_weights, final_weights

    overrides = [*setup["common"], f"distill.teacher_outputs={setup['outputs']}", "train.max_epochs=3",
                 "train.early_stopping_patience=0"]
    straight = train_distill(load_config("distill", [*overrides, f"paths.runs_dir={tmp_path / 'a'}"]))
    runs = tmp_path / "b"
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_distill(load_config("distill", [*overrides, f"paths.runs_dir={runs}"]), extra_callbacks=[Crash(2)])
    (run,) = [p for p in runs.iterdir() if p.is_dir()]
    assert main(["train", "distill", "--resume", str(run)]) == 0
    assert json.loads((run / "metrics.json").read_text()) == straight.metrics
    assert_same_weights(final_weights(run), final_weights(straight.run_dir))
