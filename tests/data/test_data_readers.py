"""Readers on small files of each format, written by the tests."""

from __future__ import annotations

import pandas as pd
import pytest
from data_files import ITEMS, ROWS, write_csv, write_grouplens_100k, write_ml1m, write_recbole, zip_folder

from recdistill.data import readers
from recdistill.data.files import Container


def _check_interactions(frame: pd.DataFrame, user_prefix: str = "", item_prefix: str = "") -> None:
    assert list(frame.columns[:4]) == ["user", "item", "timestamp", "rating"]
    # file order kept; MovieLens ids are int64, token ids strings
    assert [str(u) for u in frame["user"]] == [f"{user_prefix}{u}" for u, _, _, _ in ROWS]
    assert [str(i) for i in frame["item"]] == [f"{item_prefix}{i}" for _, i, _, _ in ROWS]
    assert frame["timestamp"].tolist() == [t for _, _, _, t in ROWS]
    assert frame["timestamp"].dtype == "int64"
    assert frame["rating"].tolist() == [float(r) for _, _, r, _ in ROWS]
    assert frame["line"].tolist()[:2] == [1, 2] or frame["line"].tolist()[:2] == [2, 3]


def _check_items(items: pd.DataFrame, id_prefix: str = "") -> None:
    by_id = items.set_index("original_id")
    assert by_id.loc[f"{id_prefix}10", "title"] == "Amélie"
    assert by_id.loc[f"{id_prefix}10", "year"] == 2001
    assert by_id.loc[f"{id_prefix}20", "title"] == "Cité des enfants perdus, La"
    assert by_id.loc[f"{id_prefix}30", "year"] == 1995
    assert pd.isna(by_id.loc[f"{id_prefix}40", "year"])
    assert by_id.loc[f"{id_prefix}40", "title"] == "unknown"


def test_split_title_year():
    assert readers.split_title_year("Toy Story (1995)") == ("Toy Story", 1995)
    assert readers.split_title_year("Shanghai Triad (Yao a yao yao dao waipo qiao) (1995)") == (
        "Shanghai Triad (Yao a yao yao dao waipo qiao)", 1995)
    assert readers.split_title_year("unknown") == ("unknown", None)


def test_grouplens_100k_folder_and_zip(tmp_path):
    folder = write_grouplens_100k(tmp_path / "ml-100k")
    for container in (Container(folder), Container(zip_folder(folder, tmp_path / "ml-100k.zip"))):
        interactions, items = readers.read_ml100k(container)
        _check_interactions(interactions)
        _check_items(items)
        genres = items.set_index("original_id")["genres"]
        assert genres["30"] == ["Animation", "Children's", "Comedy"]   # flags decoded in GroupLens order
        assert genres["40"] == ["unknown"]


def test_ml1m_latin1_titles(tmp_path):
    folder = write_ml1m(tmp_path / "ml-1m")
    assert "Amélie".encode("latin-1") in (folder / "movies.dat").read_bytes()   # really latin-1 on disk
    interactions, items = readers.read_ml1m(Container(folder))
    _check_interactions(interactions)
    _check_items(items)
    assert items.set_index("original_id").loc["20", "genres"] == ["Adventure", "Sci-Fi"]


def test_recbole_atomic_files(tmp_path):
    folder = write_recbole(tmp_path / "mydata", "mydata")
    interactions, items = readers.read_recbole(Container(folder), "mydata")
    _check_interactions(interactions)
    _check_items(items)
    assert items.set_index("original_id").loc["30", "genres"] == ["Animation", "Children's", "Comedy"]


def test_recbole_without_item_file(tmp_path):
    folder = write_recbole(tmp_path / "x", "x")
    (folder / "x.item").unlink()
    interactions, items = readers.read_recbole(Container(folder), "x")
    assert items is None and len(interactions) == len(ROWS)


@pytest.mark.parametrize("sep", [",", ";"])
def test_csv_with_quoted_titles(tmp_path, sep):
    file = write_csv(tmp_path / "inter.csv", sep=sep)
    interactions, items = readers.read_csv(
        Container(tmp_path).read("inter.csv"), separator=sep, encoding="utf-8", user_col="user_id",
        item_col="item_id", timestamp_col="timestamp", rating_col="rating", title_col="title")
    _check_interactions(interactions, "u", "i")
    _check_items(items, "i")
    assert file.is_file()


def test_csv_items_file(tmp_path):
    (tmp_path / "items.csv").write_text(
        "item_id,title,genres\n" + "".join(f'i{i},"{t}",{"|".join(g)}\n' for i, t, g in ITEMS), encoding="utf-8")
    items = readers.read_items_csv(Container(tmp_path).read("items.csv"), separator=",", encoding="utf-8",
                                   item_col="item_id", title_col="title", genres_col="genres")
    _check_items(items, "i")
    assert items.set_index("original_id").loc["i10", "genres"] == ["Comedy", "Romance"]


def test_video_marker_and_year_from_release_date(tmp_path):
    items = [(10, "Land Before Time III: The Time of the Great Giving (1995) (V)", ["Animation"]),
             (20, "No Year Here", ["Drama"]), (30, "Toy Story (1995)", []), (40, "unknown", [])]
    folder = write_grouplens_100k(tmp_path / "gl", items=items)
    lines = (folder / "u.item").read_text(encoding="latin-1").splitlines()
    lines[1] = lines[1].replace("No Year Here||", "No Year Here|12-Mar-1995|")
    (folder / "u.item").write_text("\n".join(lines) + "\n", encoding="latin-1")
    _, read = readers.read_ml100k(Container(folder))
    assert read["title"].tolist()[:2] == ["Land Before Time III: The Time of the Great Giving", "No Year Here"]
    assert read["year"].tolist()[:2] == [1995, 1995]          # the second from the release date column


def test_crlf_blank_lines_and_slow_path_keep_line_numbers(tmp_path):
    folder = write_ml1m(tmp_path / "ml-1m")
    text = (folder / "ratings.dat").read_text(encoding="latin-1")
    crlf = text.replace("\n", "\r\n")
    (folder / "ratings.dat").write_bytes(crlf.encode("latin-1"))
    interactions, _ = readers.read_ml1m(Container(folder))
    _check_interactions(interactions)
    lines = text.splitlines()
    (folder / "ratings.dat").write_text("\n".join(lines[:3] + [""] + lines[3:]) + "\n", encoding="latin-1")
    interactions, _ = readers.read_ml1m(Container(folder))      # a blank line: the line-by-line parser
    _check_interactions(interactions)
    assert interactions["line"].tolist()[2:5] == [3, 5, 6]
