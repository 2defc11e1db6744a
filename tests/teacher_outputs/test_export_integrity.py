"""Export integrity through the CLI (issue 14): every shard's and the embeddings' SHA-256 is in the
manifest; rerunning `export` over a damaged export redoes the damaged files (it used to say "nothing to
do"); `train distill` on a damaged export names the file and says to rerun the export (exit 2, no
traceback); settings that cannot be honoured are refused before any folder exists."""

import json
import shutil

import pytest

from recdistill.cli import main
from recdistill.config import compose
from recdistill.engine.rundir import sha256_file
from recdistill.recipes.student import train_student
from tests.conftest import make_tiny_prepared

STUDENT = ["student.max_len=8", "student.hidden_size=16", "student.num_blocks=1", "train.max_epochs=1",
           "train.batch_size=16", "run.progress_bar=false", "eval.sampled_negatives=10"]


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    root = tmp_path_factory.mktemp("integrity")
    prepared = make_tiny_prepared(root / "data" / "tiny")
    trained = train_student(compose("student", [f"+prepared={prepared}", f"paths.runs_dir={root / 'runs'}", *STUDENT]))
    export_args = ["export", "teacher=student", f"teacher.checkpoint={trained.artefacts['best_checkpoint']}",
                   f"prepared={prepared}", f"paths.runs_dir={root / 'runs'}", "teacher.device=cpu",
                   "export.candidates=all", "export.top_k=5", "export.shard_rows=64", "export.progress_bar=false"]
    out = root / "export"
    assert main([*export_args, f"export.out_dir={out}"]) == 0
    return {"root": root, "prepared": prepared, "args": export_args, "out": out}


def copy_export(setup, tmp_path):
    out = tmp_path / "export"
    shutil.copytree(setup["out"], out)
    return out


def truncate(file):
    data = file.read_bytes()
    file.write_bytes(data[: len(data) // 2])


def garbage(file):
    file.write_bytes(b"not a parquet file at all" * 20)


def drop_checksums(out):
    """Make the manifest look like one written before checksums were recorded."""
    manifest = json.loads((out / "manifest.json").read_text())
    for entry in manifest["shards"]:
        entry.pop("sha256")
    manifest["embeddings"].pop("sha256")
    (out / "manifest.json").write_text(json.dumps(manifest))


def test_manifest_records_every_files_checksum(setup):
    manifest = json.loads((setup["out"] / "manifest.json").read_text())
    assert len(manifest["shards"]) > 2 and manifest["complete"]
    for entry in manifest["shards"]:
        assert entry["sha256"] == sha256_file(setup["out"] / entry["file"])
    assert manifest["embeddings"]["sha256"] == sha256_file(setup["out"] / "item_embeddings.safetensors")


@pytest.mark.parametrize("damage", [truncate, garbage])
def test_rerunning_export_redoes_a_damaged_shard_and_embeddings(setup, tmp_path, capsys, damage):
    out = copy_export(setup, tmp_path)
    originals = {f.name: f.read_bytes() for f in out.iterdir() if f.name != "manifest.json"}
    damage(out / "topk-00001.parquet")
    truncate(out / "item_embeddings.safetensors")
    capsys.readouterr()
    assert main([*setup["args"], f"export.out_dir={out}"]) == 0
    said = capsys.readouterr().out
    assert "topk-00001.parquet is damaged" in said and "item_embeddings.safetensors is damaged" in said
    assert "nothing to do" not in said
    assert {f.name: f.read_bytes() for f in out.iterdir() if f.name != "manifest.json"} == originals
    assert json.loads((out / "manifest.json").read_text())["complete"]
    # and now it is intact, a rerun has nothing to do
    assert main([*setup["args"], f"export.out_dir={out}"]) == 0
    assert "nothing to do" in capsys.readouterr().out


@pytest.mark.parametrize("checksums", [True, False], ids=["with-checksums", "older-manifest"])
@pytest.mark.parametrize("file,damage,problem", [
    ("topk-00001.parquet", truncate, "parquet"),
    ("topk-00001.parquet", garbage, "parquet"),
    ("item_embeddings.safetensors", truncate, "safetensors"),
])
def test_train_distill_names_a_damaged_file(setup, tmp_path, capsys, checksums, file, damage, problem):
    out = copy_export(setup, tmp_path)
    damage(out / file)
    if not checksums:
        drop_checksums(out)
    runs = tmp_path / "runs"
    code = main(["train", "distill", f"prepared={setup['prepared']}", f"paths.runs_dir={runs}", *STUDENT,
                 f"distill.teacher_outputs={out}"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("error: ") and file in err and "rerun `recdistill export`" in err
    assert ("SHA-256" in err) if checksums else (f"not a readable {problem} file" in err)
    assert "Traceback" not in err
    assert not runs.exists()


@pytest.mark.parametrize("setting", ["export.top_k=5000", "export.candidates=random export.num_candidates=3"])
def test_settings_that_cannot_be_honoured_leave_no_folder(setup, tmp_path, capsys, setting):
    out = tmp_path / "never"
    runs = tmp_path / "runs"
    args = [a for a in setup["args"] if not a.startswith("paths.runs_dir")]
    code = main([*args, *setting.split(), f"paths.runs_dir={runs}"])
    err = capsys.readouterr().err
    assert code == 2 and "export.top_k=" in err and "Traceback" not in err
    assert not runs.exists()
    code = main([*args, *setting.split(), f"export.out_dir={out}"])
    assert code == 2 and not out.exists()
