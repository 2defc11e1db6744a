"""Bad values and bad places become one-line errors before anything runs (exit 2, no traceback, no run
folder): config values of the wrong type, unwritable paths, unreadable checkpoints."""

from __future__ import annotations

import os

import pytest
import yaml
from omegaconf import OmegaConf

from recdistill.cli import main
from recdistill.config import compose
from recdistill.config.compose import conf_root, list_options
from recdistill.config.types import DECLARED
from recdistill.errors import ConfigError, RecdistillError


def _flat(tree, prefix=""):
    out = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def test_every_null_default_declares_its_type():
    undeclared = set()
    for root_file in conf_root().glob("*.yaml"):
        groups = [next(iter(e)) for e in yaml.safe_load(root_file.read_text()).get("defaults", [])]
        for choice in [[]] + [[f"{g}={o}"] for g in groups for o in list_options(g)]:
            cfg = compose(root_file.stem, choice)
            flat = _flat(OmegaConf.to_container(cfg, resolve=False))
            undeclared |= {k for k, v in flat.items() if v is None and k not in DECLARED}
    assert not undeclared, f"declare these in recdistill/config/types.py: {sorted(undeclared)}"


def _fails(capsys, *argv) -> str:
    assert main(list(argv)) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1 and "Traceback" not in err
    return err


def test_a_value_of_the_wrong_type_is_refused_before_anything_runs(tmp_path, capsys):
    runs = tmp_path / "runs"
    err = _fails(capsys, "train", "student", f"paths.runs_dir={runs}", "efficiency.seed=abc")
    assert "efficiency.seed='abc'" in err and "an integer" in err
    _fails(capsys, "train", "student", f"paths.runs_dir={runs}", "train.lr=fast")
    _fails(capsys, "train", "student", f"paths.runs_dir={runs}", "eval.ks=[1,x]")
    _fails(capsys, "train", "student", f"paths.runs_dir={runs}", "train.max_epochs=1.5")
    _fails(capsys, "lm", "train", f"paths.runs_dir={runs}", "lm.d_model=wide")
    assert not runs.exists()
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  batch_size: [64]\n")
    with pytest.raises(ConfigError, match=r"in .*bad.yaml: train.batch_size=\[64\]"):
        compose("student", [], [bad])


def test_declared_unions_and_numbers_for_strings_are_accepted():
    cfg = compose("student", ["train.batch_size=auto", "efficiency.compile=eager", "efficiency.fused_adamw=true",
                              "train.limit_train_batches=0.5", "train.lr=1", "run.name=2024", "eval.ks=[1,10]",
                              "efficiency.gradient_clip_val=1.0", "efficiency.devices=auto"])
    assert cfg.train.batch_size == "auto" and cfg.run.name == "2024" and cfg.train.lr == 1
    cfg = compose("student", ["train.batch_size=64", "train.limit_train_batches=3", "efficiency.precision=32"])
    assert cfg.train.batch_size == 64
    with pytest.raises(ConfigError, match="an integer or 'auto'"):
        compose("student", ["train.batch_size=big"])


def test_unwritable_or_file_paths_are_refused(tmp_path, capsys):
    a_file = tmp_path / "a_file"
    a_file.write_text("not a folder")
    for key in ("paths.runs_dir", "paths.data_dir"):
        err = _fails(capsys, "train", "student", f"{key}={a_file}")
        assert f"{key}={a_file} is a file, not a folder" in err
        err = _fails(capsys, "train", "student", f"{key}={a_file / 'runs'}")
        assert "which is a file" in err
    # A place nobody can write to, whoever runs the tests (root ignores permission bits).
    err = _fails(capsys, "train", "student", "paths.runs_dir=/proc/recdistill-runs")
    assert "cannot be written" in err
    if os.geteuid() != 0:
        locked = tmp_path / "locked"
        locked.mkdir(mode=0o500)
        err = _fails(capsys, "data", "prepare", f"paths.data_dir={locked / 'data'}")
        assert "cannot be written" in err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a_file"] + (["locked"] if os.geteuid() != 0 else [])


@pytest.fixture
def student_checkpoint(tiny_prepared, tmp_path):
    from recdistill.recipes.student import train_student

    cfg = compose("student", [f"prepared={tiny_prepared}", f"paths.runs_dir={tmp_path / 'runs'}",
                              "student.hidden_size=8", "student.num_blocks=1", "student.max_len=5",
                              "train.max_epochs=1", "run.progress_bar=false", "eval.sampled_negatives=0"])
    return train_student(cfg).run_dir


def test_truncated_or_garbage_checkpoints_say_so(student_checkpoint, tmp_path, capsys):
    run = student_checkpoint
    (best,) = (run / "checkpoints").glob("student-*.ckpt")
    data = best.read_bytes()
    truncated, garbage = tmp_path / "truncated.ckpt", tmp_path / "garbage.ckpt"
    truncated.write_bytes(data[: len(data) // 2])
    garbage.write_bytes(b"\x80\x04" + os.urandom(2000))
    runs = tmp_path / "eval-runs"
    for bad in (truncated, garbage):
        for argv in (["eval", "student", str(bad), f"paths.runs_dir={runs}"],
                     ["lm", "eval", str(bad), f"paths.runs_dir={runs}"],
                     ["lm", "generate", str(bad)]):
            err = _fails(capsys, *argv)
            assert "not a recdistill" in err and "or truncated" in err and "weights_only" not in err, err
    assert not runs.exists()

    # a resumed run whose last.ckpt was cut short is refused before anything is written
    last = run / "checkpoints" / "last.ckpt"
    last.write_bytes(last.read_bytes()[:1000])
    before = sorted(p.name for p in run.rglob("*"))
    err = _fails(capsys, "train", "student", f"train.resume={run}")
    assert "last.ckpt is not a recdistill checkpoint, or truncated" in err
    assert sorted(p.name for p in run.rglob("*")) == before


def test_truncated_adapter_tensors_say_so(tmp_path):
    from safetensors.torch import save_file
    import torch

    from recdistill.engine.checkpoint_files import read_safetensors_file

    path = tmp_path / "adapter.safetensors"
    save_file({"w": torch.zeros(64, 64)}, str(path))
    path.write_bytes(path.read_bytes()[:500])
    with pytest.raises(RecdistillError, match="adapter.safetensors is not a recdistill teacher adapter, or truncated"):
        read_safetensors_file(path, "teacher adapter")
