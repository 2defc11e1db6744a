"""Bad input to `recdistill pipeline`: a clear error, exit status 2, nothing written."""

from __future__ import annotations

import pytest

from recdistill.cli import main


def paths(tmp_path):
    return [f"paths.runs_dir={tmp_path / 'runs'}", f"paths.data_dir={tmp_path / 'data'}"]


@pytest.mark.parametrize("extra, message", [
    (["--from", "traning"], "unknown stage 'traning' in --from; choose one of: prepare, student, teacher, export, "
                            "distill, report"),
    (["--profile", "huge"], "unknown profile 'huge'; choose one of: cpu, demo, dllm2rec, full, paper, smoke"),
    (["pipeline.until=distil"], "unknown stage 'distil' in pipeline.until"),
    (["trian.max_epochs=3"], "override 'trian.max_epochs=3' matches no stage's config"),
    (["studnet:train.max_epochs=3"], "unknown stage 'studnet'"),
    (["pipeline.until=prepare", "--from", "student"], "--from student comes after pipeline.until=prepare"),
])
def test_bad_input_is_a_clear_error(extra, message, tmp_path, capsys):
    options = [x for i, x in enumerate(extra) if x.startswith("--") or (i and extra[i - 1].startswith("--"))]
    words = [x for x in extra if x not in options]
    assert main(["pipeline", *options, *paths(tmp_path), *words]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "runs").exists()


def test_bad_stage_override_names_the_stage(tmp_path, capsys):
    assert main(["pipeline", "--profile", "smoke", *paths(tmp_path), "student:train.max_epoch=3"]) == 2
    err = capsys.readouterr().err
    assert "stage student:" in err and "unknown config key 'train.max_epoch'" in err
