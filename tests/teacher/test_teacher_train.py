"""`recdistill train teacher`, `eval teacher` and `export` end to end on the tiny Llama and tiny data."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from omegaconf import OmegaConf

from recdistill.cli import main
from recdistill.config import compose
from recdistill.data.prepared import load_prepared
from recdistill.errors import ConfigError
from teacher_fixtures import CACHE, make_student, write_student_checkpoint


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    from conftest import make_tiny_prepared
    from recdistill.recipes.teacher import train_teacher

    root = tmp_path_factory.mktemp("teacher")
    prepared = make_tiny_prepared(root / "data" / "tiny")
    data = load_prepared(prepared)
    student_ckpt = write_student_checkpoint(root / "student.ckpt", make_student(), data)
    common = [f"prepared={prepared}", f"paths.runs_dir={root / 'runs'}", f"paths.cache_dir={CACHE}",
              "run.progress_bar=false"]
    cfg = compose("teacher", common + [
        "llm=tiny-llama", f"teacher.student_checkpoint={student_ckpt}", "train.batch_size=4",
        "train.limit_train_batches=3", "train.limit_val_batches=1", "train.limit_test_batches=1",
        "train.eval_batch_size=4", "teacher.eval.method=both", "teacher.eval.max_new_tokens=4",
        "teacher.data.train_positions=last", "teacher.data.last_n=2", "teacher.prompt.max_tokens=200",
        "efficiency.accumulate_grad_batches=1"])
    result = train_teacher(cfg)
    return {"result": result, "root": root, "prepared": prepared, "student": student_ckpt, "common": common,
            "data": data}


def test_train_teacher_writes_adapter_metrics_and_counts(trained):
    result = trained["result"]
    metrics = result.metrics
    for split in ("val", "test"):
        for name in ("cand20_hr@1", "cand20_hr@5", "cand20_ndcg@5", "cand20_ndcg@10", "gen_valid_ratio",
                     "gen_hr@1", "gen_hr@1_valid", "loss"):
            assert f"{split}/{name}" in metrics
        assert 0.0 <= metrics[f"{split}/cand20_hr@1"] <= metrics[f"{split}/cand20_hr@5"] <= 1.0
    assert metrics["train_steps"] == 3 and metrics["seconds_per_step"] > 0
    fit = next(r for r in result.stages if r["stage"] == "fit")
    assert fit["answer_tokens"] > 0 and fit["tokens"] > fit["answer_tokens"]
    report = result.info["prompt_report"]
    assert report["train"]["prompts_cut"] > 0                    # max_tokens=200 cuts some prompts
    assert report["train"]["tokens_max"] <= 200
    from pathlib import Path

    adapter = Path(result.artefacts["adapter"])
    assert (adapter / "adapter.safetensors").is_file() and (adapter / "adapter.json").is_file()
    ckpts = list((Path(result.run_dir) / "checkpoints").glob("*.ckpt"))
    assert ckpts
    import torch

    state = torch.load(ckpts[0], map_location="cpu", weights_only=True)["state_dict"]
    assert state and all("lora" in k or ".projector." in k or ".gate." in k for k in state)   # trained parts only


def test_eval_teacher_reproduces_the_training_run(trained):
    from recdistill.recipes.teacher import evaluate_teacher

    cfg = compose("teacher", trained["common"] + ["train.limit_val_batches=1", "train.limit_test_batches=1",
                                                  "train.eval_batch_size=4"])
    result = evaluate_teacher(cfg, trained["result"].artefacts["adapter"])
    for key in ("val/cand20_ndcg@10", "test/cand20_hr@5"):
        assert result.metrics[key] == pytest.approx(trained["result"].metrics[key], abs=1e-6)


class Interrupting:
    """A ranker that stops the export after a few batches, as a killed process would."""

    def __init__(self, inner, calls: int):
        self.inner, self.calls = inner, calls

    def identity(self):
        return self.inner.identity()

    def item_embeddings(self):
        return self.inner.item_embeddings()

    def rank(self, histories, candidates, top_k):
        if self.calls == 0:
            raise KeyboardInterrupt
        self.calls -= 1
        return self.inner.rank(histories, candidates, top_k)


def test_llm_export_resumes_without_duplicates_and_student_uses_same_format(trained, tmp_path):
    from recdistill.teacher_outputs import load_teacher_outputs
    from recdistill.teacher_outputs.build import export_files
    from recdistill.recipes.export import export_settings, llm_ranker, run_export

    common = trained["common"]
    cfg = compose("export", common + [f"teacher.adapter={trained['result'].artefacts['adapter']}", "export.candidates=random",
                                      "export.num_candidates=12", "export.top_k=5", "export.limit=8",
                                      "export.batch_size=2", "export.shard_rows=4", "export.progress_bar=false",
                                      f"export.out_dir={tmp_path / 'llm'}"])
    data = trained["data"]
    ranker = llm_ranker(cfg, data)
    with pytest.raises(KeyboardInterrupt):
        export_files(export_settings(cfg), Interrupting(ranker, calls=3), data, tmp_path / "llm")   # dies inside shard 2
    manifest = export_files(export_settings(cfg), ranker, data, tmp_path / "llm")
    assert manifest["complete"] and manifest["teacher"]["kind"] == "llm"
    fresh = export_files(export_settings(cfg), ranker, data, tmp_path / "fresh")
    outputs = load_teacher_outputs(tmp_path / "llm", data.train, data.fingerprint, data.num_items)
    table = pd.concat([pd.read_parquet(tmp_path / "llm" / s["file"]) for s in manifest["shards"]])
    reference = pd.concat([pd.read_parquet(tmp_path / "fresh" / s["file"]) for s in fresh["shards"]])
    assert len(table) == 8 and not table.duplicated(["user", "position"]).any()
    assert table["items"].map(list).tolist() == reference["items"].map(list).tolist()
    np.testing.assert_allclose(np.stack(table["scores"]), np.stack(reference["scores"]), rtol=1e-5)
    np.testing.assert_allclose(np.stack(table["confidences"]).sum(1), 1.0, rtol=1e-5)
    assert manifest["embeddings"]["dim"] == 64 and outputs is not None

    student_cfg = compose("export", common + ["teacher=student", f"teacher.checkpoint={trained['student']}",
                                              "export.candidates=random", "export.num_candidates=12", "export.top_k=5",
                                              "export.limit=12", "export.progress_bar=false",
                                              f"export.out_dir={tmp_path / 'student'}"])
    result = run_export(student_cfg)
    assert result.manifest["teacher"]["kind"] == "student"
    # the same format; `recdistill export` adds its check of the teacher on validation candidates
    assert sorted(k for k in result.manifest if k != "teacher_check") == sorted(manifest)
    assert result.manifest["teacher_check"]["users"] > 0 and "student" not in result.manifest["teacher_check"]


def test_command_line_errors_are_clear(trained, capsys):
    common = trained["common"]
    assert main(["train", "teacher", *common, "llm=tiny-llama"]) == 2
    assert "teacher.student_checkpoint is required" in capsys.readouterr().err
    assert main(["train", "teacher", *common, "teacher.mode=moe"]) == 2
    assert "teacher.mode" in capsys.readouterr().err
    assert main(["export", *common]) == 2
    assert "teacher.adapter" in capsys.readouterr().err
    with pytest.raises(ConfigError, match="must be a positive multiple"):
        from recdistill.recipes.teacher_settings import teacher_spec

        teacher_spec(compose("teacher", ["teacher.lora.r=6", "teacher.lora.num_experts=4"]).teacher)


def test_checkpoint_monitor_follows_the_candidate_count():
    from recdistill.errors import ConfigError
    from recdistill.recipes.teacher_settings import checkpoint_monitor

    assert checkpoint_monitor(compose("teacher", [])) == "val/cand20_ndcg@10"
    assert checkpoint_monitor(compose("teacher", ["teacher.prompt.num_candidates=10"])) == "val/cand10_ndcg@10"
    assert checkpoint_monitor(compose("teacher", ["train.monitor=val/loss"])) == "val/loss"
    with pytest.raises(ConfigError, match="num_candidates=10"):
        checkpoint_monitor(compose("teacher", ["teacher.prompt.num_candidates=10", "train.monitor=val/cand20_ndcg@10"]))


@pytest.mark.slow
def test_an_interrupted_teacher_resumes_to_the_same_adapter(trained, tmp_path):
    import lightning as L
    from safetensors.torch import load_file

    from recdistill.recipes.config import load_config
    from recdistill.recipes.teacher import train_teacher

    class Crash(L.Callback):
        def on_train_epoch_start(self, trainer, pl_module):
            if trainer.current_epoch == 1:
                raise RuntimeError("simulated crash")

    common = [f"prepared={trained['prepared']}", f"paths.cache_dir={CACHE}", "run.progress_bar=false",
              "llm=tiny-llama", f"teacher.student_checkpoint={trained['student']}", "train.batch_size=4",
              "train.limit_train_batches=2", "train.limit_val_batches=1", "train.limit_test_batches=1",
              "train.eval_batch_size=4", "teacher.data.train_positions=last", "teacher.data.last_n=2",
              "teacher.prompt.max_tokens=200", "train.max_epochs=2", "teacher.lora.dropout=0.1"]
    straight = train_teacher(load_config("teacher", [*common, f"paths.runs_dir={tmp_path / 'a'}"]))
    with pytest.raises(RuntimeError, match="simulated crash"):
        train_teacher(load_config("teacher", [*common, f"paths.runs_dir={tmp_path / 'b'}"]), extra_callbacks=[Crash()])
    (run,) = [p for p in (tmp_path / "b").iterdir() if p.is_dir()]
    assert main(["train", "teacher", f"train.resume={run}"]) == 0
    resumed = OmegaConf.to_container(OmegaConf.load(run / "metrics.json"))
    same = {k: v for k, v in straight.metrics.items() if "seconds" not in k and k != "train_steps"}
    assert {k: resumed[k] for k in same} == same
    a, b = load_file(str(run / "adapter" / "adapter.safetensors")), load_file(str(straight.run_dir / "adapter" / "adapter.safetensors"))
    assert a.keys() == b.keys() and all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)


def test_grounded_export_ranks_the_whole_catalogue_by_distance_to_the_answer(trained, tmp_path):
    """teacher.export.ranking=grounded (BIGRec's grounding) over export.candidates=all: every unseen item
    can be ranked, scores are minus L2 distances (so <= 0, best first), and the top item is the one whose
    title embedding is nearest the generated answer's, as recomputed here."""
    import torch

    from recdistill.teacher_outputs.build import export_files
    from recdistill.recipes.export import export_settings, llm_ranker

    common = trained["common"]
    cfg = compose("export", common + [f"teacher.adapter={trained['result'].artefacts['adapter']}", "export.candidates=all",
                                      "export.top_k=5", "export.limit=4", "export.progress_bar=false",
                                      "teacher.export.ranking=grounded", "teacher.export.max_new_tokens=6",
                                      f"export.out_dir={tmp_path / 'grounded'}"])
    data = trained["data"]
    ranker = llm_ranker(cfg, data)
    manifest = export_files(export_settings(cfg), ranker, data, tmp_path / "grounded")
    table = pd.concat([pd.read_parquet(tmp_path / "grounded" / s["file"]) for s in manifest["shards"]])
    scores = np.stack(table["scores"])
    assert len(table) == 4 and (scores <= 0).all() and (np.diff(scores, axis=1) <= 1e-6).all()
    titles = ranker._title_table
    assert titles.shape == (data.num_items + 1, 64)
    # the identity says how the export ranked, so a likelihood export is never taken for this one
    plain = llm_ranker(compose("export", common + [f"teacher.adapter={trained['result'].artefacts['adapter']}"]), data)
    assert plain.identity()["config_hash"] != ranker.identity()["config_hash"]
    with pytest.raises(ConfigError, match="teacher.export.ranking"):
        llm_ranker(compose("export", common + [f"teacher.adapter={trained['result'].artefacts['adapter']}",
                                                "teacher.export.ranking=guess"]), data)
    assert torch.isfinite(titles).all()
    # ... and its manifest says so, which distill.kd.confidence=exp_neg_distance reads: exp(-distance) + 1e-8
    assert manifest["teacher"]["ranking"] == "grounded" and "ranking" not in plain.identity()
    from recdistill.recipes.distill import load_teacher_for

    distill_cfg = compose("distill", [f"+prepared={trained['prepared']}", f"distill.teacher_outputs={tmp_path / 'grounded'}",
                                      "distill.kd.confidence=exp_neg_distance"])
    teacher = load_teacher_for(distill_cfg, data)
    rows = teacher.lookup(int(table["user"].iloc[0]), np.array([int(table["position"].iloc[0])]))
    assert np.allclose(teacher.confidences[rows[0]], np.exp(scores[0]) + 1e-8, rtol=1e-6)
