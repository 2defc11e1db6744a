"""The registry of dataset formats: a new format is one module and its YAML (here a made-up one, defined in
this test and prepared end to end), every built-in format matches its YAML, and an unknown one is a clear
error."""

from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path

import pytest
import yaml
from omegaconf import OmegaConf

from recdistill.cli import main
from recdistill.config.compose import compose, conf_root, list_options
from recdistill.data.columnar import TextFormat, read_columns
from recdistill.data.files import Container
from recdistill.data.formats.registry import DatasetFormat, Source, known_formats, register, required_path, unregister
from recdistill.data.prepared import load_prepared
from recdistill.data.readers import interactions_frame
from recdistill.errors import ConfigError
from recdistill.recipes.dataset_settings import COMMON_KEYS, dataset_settings
from recdistill.recipes.prepare import prepare


# --- the made-up format: what its module would hold -------------------------------------------------------

@dataclass(frozen=True)
class EventsOptions:
    separator: str
    encoding: str


def _read_events(container: Container, options: EventsOptions):
    """``events.txt``: ``user<sep>item<sep>time`` lines, no header, no titles."""
    raw = container.read("events.txt", "user, item and time per line")
    table = read_columns(raw, TextFormat(options.separator, options.encoding), ["user", "item", "time"],
                         labels=("user", "item"))
    return interactions_frame(table, "user", "item", "time", None, numeric_ids=False), None


def _locate(settings, cache):
    container = Container(required_path(settings, "the folder holding events.txt"))
    return Source(container, f"events file in {container.path}", ("events.txt",),
                  lambda: _read_events(container, settings.options))


# --- and its YAML (config/conf/dataset/events.yaml in the package) -----------------------------------------

EVENTS_YAML = """\
format: events
name: events
path: null
separator: ";"
encoding: utf-8
download: false
min_user_interactions: 3
min_item_interactions: 0
rating_threshold: null
duplicates: drop
limit: null
new_items: 0.0
new_items_by: random
new_items_seed: 0
"""


@pytest.fixture
def events_format():
    fmt = register(DatasetFormat("events", EventsOptions, _locate))
    yield fmt
    unregister("events")


def _config(tmp_path, dataset: dict):
    """The prepare command's config with the dataset group replaced, as ``dataset=events`` would compose it."""
    base = compose("prepare", [f"paths.data_dir={tmp_path / 'data'}", f"paths.cache_dir={tmp_path / 'cache'}"])
    return OmegaConf.create({**OmegaConf.to_container(base), "dataset": dataset})


def _write_events(folder: Path) -> Path:
    folder.mkdir()
    lines = ["u1;a;1", "u1;b;2", "u1;c;3", "u1;a;4", "u2;b;1", "u2;c;2", "u2;d;3", "u3;a;1", "u3;d;2"]
    (folder / "events.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def test_a_new_format_is_one_module_and_its_yaml(tmp_path, events_format):
    folder = _write_events(tmp_path / "raw")
    dataset = {**yaml.safe_load(EVENTS_YAML), "path": str(folder)}
    result = prepare(_config(tmp_path, dataset))
    data = load_prepared(result.path)
    assert result.path == tmp_path / "data" / "events"
    assert (data.num_users, data.num_items) == (2, 4)                       # u3 has 2 interactions: dropped
    assert data.train[1].tolist() == [1, 2] and data.val_target[1] == 3 and data.test_target[1] == 1
    assert result.stats["source"] == f"events file in {folder}" and result.stats["dataset"]["separator"] == ";"
    again = prepare(_config(tmp_path, dataset), force=False)                 # up to date: reused
    assert again.stats["prepared_at"] == result.stats["prepared_at"]
    with open(folder / "events.txt", "a") as fh:                             # its files are fingerprinted
        fh.write("u3;b;3\n")
    assert load_prepared(prepare(_config(tmp_path, dataset), force=False).path).num_users == 3


def test_a_format_setting_missing_or_foreign_is_named(tmp_path, events_format):
    dataset = yaml.safe_load(EVENTS_YAML)
    with pytest.raises(ConfigError, match="dataset.format=events needs dataset.separator"):
        dataset_settings(_config(tmp_path, {k: v for k, v in dataset.items() if k != "separator"}))
    with pytest.raises(ConfigError, match=r"dataset.stem is not a setting of dataset.format=events \(its own "
                                          r"settings: separator, encoding\)"):
        dataset_settings(_config(tmp_path, {**dataset, "stem": "x"}))


def test_unknown_format_is_a_config_error_naming_the_known_ones(tmp_path, capsys):
    message = "dataset.format='parquet' is not valid; choose one of: csv, ml-100k, ml-1m, recbole"
    with pytest.raises(ConfigError, match=message):
        dataset_settings(compose("prepare", ["dataset.format=parquet"]))
    assert main(["data", "prepare", f"paths.data_dir={tmp_path}", "dataset.format=parquet"]) == 2
    assert message in capsys.readouterr().err


def test_every_built_in_format_has_its_yaml_with_exactly_its_keys():
    assert set(known_formats()) == set(list_options("dataset"))
    for name in known_formats():
        group = yaml.safe_load((conf_root() / "dataset" / f"{name}.yaml").read_text())
        options = [f.name for f in fields(dataset_settings(compose("prepare", [f"dataset={name}"])).options)]
        assert group["format"] == name
        assert sorted(group) == sorted([*COMMON_KEYS, *options]), name
