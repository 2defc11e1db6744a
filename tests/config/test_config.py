import pytest

from recdistill.config import compose, config_hash
from recdistill.errors import ConfigError


def test_group_choice_and_value_override():
    cfg = compose("student", ["dataset=ml-1m", "train.batch_size=64", "student.dropout=0.5"])
    assert cfg.dataset.format == "ml-1m"
    assert cfg.train.batch_size == 64
    assert cfg.student.dropout == 0.5
    assert cfg.choices.dataset == "ml-1m"


def test_unknown_key_names_valid_keys():
    with pytest.raises(ConfigError, match="valid keys under train: .*batch_size"):
        compose("student", ["train.batchsize=3"])


def test_unknown_group_option_names_choices():
    with pytest.raises(ConfigError, match="choose one of: csv, ml-100k, ml-1m, recbole"):
        compose("student", ["dataset=ml-2m"])


def test_malformed_override():
    with pytest.raises(ConfigError, match="key=value"):
        compose("student", ["train.batch_size"])


def test_plus_adds_new_key():
    cfg = compose("student", ["+run.note=hello"])
    assert cfg.run.note == "hello"


def test_extra_file_is_merged_and_checked(tmp_path):
    good = tmp_path / "best.yaml"
    good.write_text("train:\n  batch_size: 256\n")
    assert compose("student", [], [good]).train.batch_size == 256
    # command-line overrides win over the file
    assert compose("student", ["train.batch_size=32"], [good]).train.batch_size == 32
    bad = tmp_path / "bad.yaml"
    bad.write_text("train:\n  batchsize: 256\n")
    with pytest.raises(ConfigError, match="bad.yaml"):
        compose("student", [], [bad])


def test_cache_dir_follows_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("RECDISTILL_CACHE", str(tmp_path))
    assert compose("student").paths.cache_dir == str(tmp_path)


def test_config_hash_changes_with_values():
    a = compose("student")
    b = compose("student", ["train.lr=0.01"])
    assert config_hash(a) != config_hash(b)
    assert config_hash(a) == config_hash(compose("student"))
