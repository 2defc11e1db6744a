"""Property-based tests (hypothesis) for every reader: random well-formed files round-trip their ids and
counts exactly; random malformed files end in exit 2 with a one-line message, never a traceback."""

from __future__ import annotations

import csv
import io
import tempfile
from pathlib import Path

import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from data_files import split_options, write_grouplens_100k, write_ml1m, write_recbole
from recdistill.cli import main
from recdistill.data import readers
from recdistill.data.files import Container
from recdistill.data.split import leave_one_out

FAST = settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
NUMBER_IDS = st.integers(0, 2 ** 63 - 1)
TEXT_IDS = st.text(st.characters(codec="utf-8", exclude_categories=("Cc", "Cs", "Zl", "Zp")), min_size=1,
                   max_size=12).filter(lambda s: s == s.strip())
TOKEN_IDS = TEXT_IDS.filter(lambda s: "\t" not in s)


def rows_of(ids):
    """Lists of (user, item, rating, timestamp) over a few users and items, so users repeat."""
    return st.lists(st.tuples(ids, ids), min_size=1, max_size=6, unique=True).flatmap(
        lambda pairs: st.lists(st.tuples(st.sampled_from(pairs), st.integers(1, 5), st.integers(0, 2 ** 40)),
                               min_size=1, max_size=40)).map(lambda rs: [(u, i, r, t) for (u, i), r, t in rs])


def _items(rows):
    return [(i, f"Title {n} (1999)", ["Drama"]) for n, i in enumerate(dict.fromkeys(i for _, i, _, _ in rows))]


def _write_csv(path: Path, rows) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["user_id", "item_id", "rating", "timestamp"])
    writer.writerows(rows)
    path.write_text(buffer.getvalue(), encoding="utf-8")
    return path


def _read(fmt: str, folder: Path, rows) -> pd.DataFrame:
    if fmt == "ml-100k":
        return readers.read_ml100k(Container(write_grouplens_100k(folder, rows, _items(rows))))[0]
    if fmt == "ml-1m":
        return readers.read_ml1m(Container(write_ml1m(folder, rows, _items(rows))))[0]
    if fmt == "recbole":
        return readers.read_recbole(Container(write_recbole(folder, "r", rows, _items(rows))), "r")[0]
    file = _write_csv(folder / "inter.csv", rows)
    return readers.read_csv(Container(folder).read(file.name), separator=",", encoding="utf-8",
                            user_col="user_id", item_col="item_id", timestamp_col="timestamp", rating_col="rating")[0]


def _check_round_trip(fmt: str, rows) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        frame = _read(fmt, Path(tmp) / "in", rows)
    as_text = str if fmt in ("recbole", "csv") else int
    assert [as_text(u) for u in frame["user"]] == [as_text(u) for u, _, _, _ in rows]    # ids exactly as written
    assert [as_text(i) for i in frame["item"]] == [as_text(i) for _, i, _, _ in rows]
    assert frame["timestamp"].tolist() == [t for _, _, _, t in rows]
    assert frame["rating"].tolist() == [float(r) for _, _, r, _ in rows]
    # the split keeps exactly the distinct rows of users with at least 3 of them
    distinct = pd.DataFrame(rows, columns=["u", "i", "r", "t"]).drop_duplicates()
    per_user = distinct.groupby("u").size()
    if (per_user >= 3).any():
        counts = leave_one_out(frame, None, split_options()).counts
        assert counts["interactions"] == int(per_user[per_user >= 3].sum())
        assert counts["users"] == int((per_user >= 3).sum())
        assert counts["removed_duplicates"] == len(rows) - len(distinct)


@FAST
@given(rows=rows_of(NUMBER_IDS))
@pytest.mark.parametrize("fmt", ["ml-100k", "ml-1m"])
def test_movielens_files_round_trip(fmt, rows):
    _check_round_trip(fmt, rows)


@FAST
@given(rows=rows_of(TOKEN_IDS))
def test_recbole_files_round_trip(rows):
    _check_round_trip("recbole", rows)


@FAST
@given(rows=rows_of(TEXT_IDS.filter(lambda s: "\r" not in s and "\n" not in s)))
def test_csv_files_round_trip(rows):
    _check_round_trip("csv", rows)


# --- malformed files ---------------------------------------------------------------------------------

CORRUPTIONS = {
    "drop a field": lambda fields: fields[:-1],
    "extra field": lambda fields: fields + ["7"],
    "text timestamp": lambda fields: fields[:-1] + ["yesterday"],
    "text rating": lambda fields: fields[:2] + ["good"] + fields[3:],
    "empty timestamp": lambda fields: fields[:-1] + [""],
}
NUMERIC_ID_CORRUPTIONS = {"id beyond int64": lambda fields: ["9" * 20] + fields[1:],
                          "fractional id": lambda fields: [fields[0] + ".5"] + fields[1:]}


def _write_layout(fmt: str, folder: Path, rows) -> tuple[Path, str, str, str]:
    """(dataset.path, the interactions file, its separator, its header line or '')."""
    if fmt == "ml-100k":
        return write_grouplens_100k(folder, rows, _items(rows)), "u.data", "\t", ""
    if fmt == "ml-1m":
        return write_ml1m(folder, rows, _items(rows)), "ratings.dat", "::", ""
    if fmt == "recbole":
        return write_recbole(folder, "in", rows, _items(rows)), "in.inter", "\t", "header"
    return _write_csv(folder / "inter.csv", [(f"u{u}", f"i{i}", r, t) for u, i, r, t in rows]), "inter.csv", ",", "header"


@FAST
@given(rows=rows_of(st.integers(1, 50)), data=st.data())
@pytest.mark.parametrize("fmt", ["ml-100k", "ml-1m", "recbole", "csv"])
def test_malformed_files_exit_2_with_a_message(fmt, rows, data, capsys):
    kinds = dict(CORRUPTIONS, **(NUMERIC_ID_CORRUPTIONS if fmt in ("ml-100k", "ml-1m") else {}))
    kind = data.draw(st.sampled_from(sorted(kinds)), label="corruption")
    with tempfile.TemporaryDirectory() as tmp:
        path, name, sep, header = _write_layout(fmt, Path(tmp) / "in", rows)
        file = path if path.is_file() else path / name
        lines = file.read_text(encoding="latin-1" if fmt != "csv" and fmt != "recbole" else "utf-8").splitlines()
        first = 1 if header else 0
        target = data.draw(st.integers(first, len(lines) - 1), label="line")
        fields = lines[target].split(sep)
        # rating and timestamp sit at positions 2 and 3 in every layout written here
        lines[target] = sep.join(kinds[kind](fields))
        file.write_text("\n".join(lines) + "\n", encoding="latin-1" if fmt in ("ml-100k", "ml-1m") else "utf-8")
        code = main(["data", "prepare", f"dataset={fmt}", f"dataset.path={path}", f"paths.data_dir={tmp}/data",
                     *(["dataset.title_col=null", "dataset.rating_col=rating"] if fmt == "csv" else [])])
        err = capsys.readouterr().err
        assert code == 2, (kind, err)
        assert err.startswith("error: ") and "Traceback" not in err and len(err.strip().splitlines()) == 1
        assert f"{name}, line {target + 1}:" in err, (kind, err)
        assert not (Path(tmp) / "data").exists() or not any((Path(tmp) / "data").iterdir())

