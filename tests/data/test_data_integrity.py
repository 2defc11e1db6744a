"""Nothing silently wrong: ids kept exactly or refused, duplicates by policy, sensible stats on every
reader's output, clear errors for a folder given as a CSV, no lock files left by failed prepares."""

from __future__ import annotations

import json

import pytest
from data_files import ITEMS, ROWS, write_csv, write_grouplens_100k, write_ml1m, write_recbole
from prepared_digest import prepared_digest

from recdistill.cli import main
from recdistill.data import sources
from recdistill.data.prepared import load_prepared
from recdistill.data.stats_checks import stats_problems
from recdistill.errors import DataError

# prepared_digest of the built-in ML-100K as written by commit 87db9b1, before the columnar readers
ML100K_DIGEST = "7da5967b362893f6f289df2133f19566ad4c4889b265a8aa8a46a0bf0ca610ad"
ML100K_FINGERPRINT = "5db652aa0471fb3a"
HUGE = "99999999999999999999999"


def _prepare(tmp_path, *overrides) -> int:
    return main(["data", "prepare", f"paths.data_dir={tmp_path / 'data'}", f"paths.cache_dir={tmp_path / 'cache'}",
                 *overrides])


def _stats(tmp_path, name: str) -> dict:
    return json.loads((tmp_path / "data" / name / "stats.json").read_text())


def test_id_too_large_for_int64_is_refused_not_wrapped(tmp_path, capsys):
    rows = ROWS + [(HUGE, 10, 4, 978300001), (HUGE + "9", 20, 4, 978300002)]
    folder = write_ml1m(tmp_path / "ml-1m", rows=rows)
    assert _prepare(tmp_path, "dataset=ml-1m", f"dataset.path={folder}") == 2
    err = capsys.readouterr().err
    assert f"ratings.dat, line 11: user id (user_id) does not fit a 64-bit integer, found '{HUGE}'" in err
    assert "Traceback" not in err and not (tmp_path / "data" / "ml-1m").exists()


def test_large_text_ids_are_kept_exactly(tmp_path):
    big = [(f"{HUGE}{u}", f"{HUGE}{i}", r, t) for u, i, r, t in ROWS]
    file = write_csv(tmp_path / "inter.csv", rows=big, items=[(f"{HUGE}{i}", t, g) for i, t, g in ITEMS])
    assert _prepare(tmp_path, "dataset=csv", f"dataset.path={file}", "dataset.title_col=null") == 0
    data = load_prepared(tmp_path / "data" / "csv")
    users = set(__import__("pandas").read_parquet(tmp_path / "data" / "csv" / "users.parquet")["original_id"])
    assert users == {f"u{HUGE}1", f"u{HUGE}2"}           # two users, their ids as written
    assert set(data.items["original_id"]) == {f"i{HUGE}{i}" for i, _, _ in ITEMS}


def _doubled_csv(tmp_path):
    file = write_csv(tmp_path / "inter.csv")
    lines = file.read_text().splitlines()
    file.write_text("\n".join(lines[:1] + [line for line in lines[1:] for _ in range(2)]) + "\n")
    return file


def test_duplicates_dropped_by_default_and_counted(tmp_path):
    once = write_csv(tmp_path / "once" / "inter.csv")
    assert _prepare(tmp_path, "dataset=csv", f"dataset.path={once}", "dataset.name=once") == 0
    assert _prepare(tmp_path, "dataset=csv", f"dataset.path={_doubled_csv(tmp_path)}", "dataset.name=twice") == 0
    once_stats, twice_stats = _stats(tmp_path, "once"), _stats(tmp_path, "twice")
    assert twice_stats["filtering"]["removed_duplicates"] == len(ROWS) == twice_stats["filtering"]["raw_duplicate_rows"]
    for key in ("users", "items", "interactions", "sparsity", "train_interactions", "sequence_length"):
        assert twice_stats[key] == once_stats[key]
    twice = load_prepared(tmp_path / "data" / "twice")
    assert all(twice.val_target[u] != twice.test_target[u] or u == 0 for u in range(1, twice.num_users + 1))


def test_duplicates_keep_gives_sane_stats_and_error_names_lines(tmp_path, capsys):
    file = _doubled_csv(tmp_path)
    assert _prepare(tmp_path, "dataset=csv", f"dataset.path={file}", "dataset.duplicates=keep") == 0
    stats = _stats(tmp_path, "csv")
    assert stats["interactions"] == 2 * len(ROWS) and 0 <= stats["sparsity"] <= 1   # user 3 now has 4
    assert stats["filtering"]["raw_duplicate_rows"] == len(ROWS) and stats["filtering"]["removed_duplicates"] == 0
    assert stats_problems(stats) == []
    assert _prepare(tmp_path, "dataset=csv", f"dataset.path={file}", "dataset.duplicates=error",
                    "dataset.name=strict") == 2
    err = capsys.readouterr().err
    assert "inter.csv, line 3: repeats line 2 (same user, item, timestamp and rating); 10 such rows" in err
    assert _prepare(tmp_path, "dataset=csv", f"dataset.path={file}", "dataset.duplicates=sometimes") == 2
    assert "dataset.duplicates" in capsys.readouterr().err


@pytest.mark.parametrize("fmt", ["ml-100k", "ml-1m", "recbole", "csv"])
@pytest.mark.parametrize("doubled", [False, True])
def test_stats_invariants_on_every_reader(tmp_path, fmt, doubled):
    rows = ROWS + ROWS if doubled else ROWS
    paths = {"ml-100k": lambda: write_grouplens_100k(tmp_path / "in", rows=rows),
             "ml-1m": lambda: write_ml1m(tmp_path / "in", rows=rows),
             "recbole": lambda: write_recbole(tmp_path / "in", "in", rows=rows),
             "csv": lambda: write_csv(tmp_path / "in.csv", rows=rows)}
    for policy in ("drop", "keep"):
        assert _prepare(tmp_path, f"dataset={fmt}", f"dataset.path={paths[fmt]()}", f"dataset.duplicates={policy}",
                        f"dataset.name={policy}") == 0
        stats = _stats(tmp_path, policy)
        assert stats_problems(stats) == [], stats
        assert stats["filtering"]["raw_duplicate_rows"] == (len(ROWS) if doubled else 0)


def test_stats_problems_catches_nonsense():
    good = {"users": 1, "items": 2, "interactions": 4, "user_item_pairs": 2, "train_interactions": 2,
            "val_interactions": 1, "test_interactions": 1, "sparsity": 0.0, "dropped_users": 0,
            "sequence_length": {"min": 4, "mean": 4.0, "median": 4.0, "p90": 4.0, "max": 4}, "filtering": {}}
    assert stats_problems(good) == []
    assert stats_problems({**good, "sparsity": -1.0}) == ["sparsity -1.0 in [0, 1]"]
    assert stats_problems({**good, "test_interactions": 2})


def test_csv_path_that_is_a_folder(tmp_path, capsys):
    write_csv(tmp_path / "folder" / "ratings.csv")
    assert _prepare(tmp_path, "dataset=csv", f"dataset.path={tmp_path / 'folder'}") == 2
    err = capsys.readouterr().err
    assert "(dataset.path) is a folder (it holds ratings.csv); dataset.path must be the CSV file itself" in err
    assert "does not exist" not in err


def test_failed_prepare_leaves_no_lock_file(tmp_path, capsys):
    folder = write_grouplens_100k(tmp_path / "ml-100k")
    (folder / "u.data").write_text("1\t2\t3\n")
    assert _prepare(tmp_path, f"dataset.path={folder}") == 2
    assert not (tmp_path / "data").exists()                     # nothing at all: no lock, no folder
    (tmp_path / "data").mkdir()
    assert _prepare(tmp_path, f"dataset.path={folder}") == 2
    assert list((tmp_path / "data").iterdir()) == []


def test_builtin_ml100k_is_unchanged(tmp_path, cache_dir):
    """Same tables and fingerprint as before the columnar readers, so downstream metrics are unchanged."""
    try:
        sources.fetch_recbole_wheel(sources.cache_dir(cache_dir))
    except DataError as exc:
        pytest.skip(f"recbole wheel not available: {exc}")
    assert main(["data", "prepare", f"paths.data_dir={tmp_path}", f"paths.cache_dir={cache_dir}",
                 "dataset.download=false"]) == 0
    assert prepared_digest(tmp_path / "ml-100k") == ML100K_DIGEST
    stats = json.loads((tmp_path / "ml-100k" / "stats.json").read_text())
    assert stats["fingerprint"] == ML100K_FINGERPRINT and stats["filtering"]["removed_duplicates"] == 0
    assert stats_problems(stats) == []
