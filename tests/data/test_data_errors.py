"""Bad input: each gets a DataError naming the file, the line and what was expected; nothing half-written."""

from __future__ import annotations

import zipfile

import pytest
from data_files import write_csv, write_grouplens_100k, write_ml1m, write_recbole

from recdistill.cli import main
from recdistill.data import readers
from recdistill.data.files import Container
from recdistill.errors import DataError


def _replace_line(file, number: int, text: str, encoding: str = "latin-1") -> None:
    lines = file.read_bytes().decode(encoding).splitlines()
    lines[number - 1] = text
    file.write_bytes(("\n".join(lines) + "\n").encode(encoding))


def test_missing_file(tmp_path):
    folder = write_ml1m(tmp_path / "ml-1m")
    (folder / "movies.dat").unlink()
    with pytest.raises(DataError, match=r"movies.dat is missing \(MovieID::Title::Genres lines\)"):
        readers.read_ml1m(Container(folder))
    with pytest.raises(DataError, match="does not exist"):
        Container(tmp_path / "nowhere")


def test_missing_zip_member(tmp_path):
    archive = tmp_path / "ml-100k.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ml-100k/u.data", "1\t2\t3\t4\n")
    with pytest.raises(DataError, match=r"ml-100k.zip has no member named u.item"):
        readers.read_ml100k(Container(archive))


def test_wrong_separator(tmp_path):
    folder = write_ml1m(tmp_path / "ml-1m")
    (folder / "ratings.dat").write_text("1::10::5::100\n1,20,4,200\n")
    with pytest.raises(DataError) as err:
        readers.read_ml1m(Container(folder))
    message = str(err.value)
    assert "ratings.dat, line 2" in message and "expected 4 '::'-separated fields" in message
    assert "looks ','-separated" in message


def test_wrong_number_of_columns(tmp_path):
    folder = write_grouplens_100k(tmp_path / "ml-100k")
    _replace_line(folder / "u.data", 4, "1\t30\t2")
    with pytest.raises(DataError, match=r"u.data, line 4: expected 4 tab-separated fields .*found 3"):
        readers.read_ml100k(Container(folder))


def test_non_numeric_id(tmp_path):
    folder = write_grouplens_100k(tmp_path / "ml-100k")
    _replace_line(folder / "u.data", 3, "x1\t20\t4\t200")
    with pytest.raises(DataError, match=r"u.data, line 3: expected a number for user id \(user_id\), found 'x1'"):
        readers.read_ml100k(Container(folder))


def test_non_numeric_timestamp(tmp_path):
    folder = write_recbole(tmp_path / "r", "r")
    _replace_line(folder / "r.inter", 5, "1\t30\t2\tyesterday", encoding="utf-8")
    with pytest.raises(DataError, match=r"r.inter, line 5: expected a number for timestamp .*'yesterday'"):
        readers.read_recbole(Container(folder), "r")


def test_fractional_id_rejected(tmp_path):
    folder = write_ml1m(tmp_path / "ml-1m")
    _replace_line(folder / "movies.dat", 2, "20.5::Heat (1995)::Action")
    with pytest.raises(DataError, match=r"movies.dat, line 2: expected a whole number for item id"):
        readers.read_ml1m(Container(folder))


def test_duplicate_item_line(tmp_path):
    folder = write_ml1m(tmp_path / "ml-1m")
    _replace_line(folder / "movies.dat", 3, "10::Again (2000)::Drama")
    with pytest.raises(DataError, match=r"movies.dat, line 3: item id 10 appears twice \(first on line 1\)"):
        readers.read_ml1m(Container(folder))


def test_utf8_file_where_latin1_expected(tmp_path):
    folder = write_ml1m(tmp_path / "ml-1m", encoding="utf-8")
    with pytest.raises(DataError, match=r"movies.dat, line 1: expected latin-1 .* set dataset.encoding=utf-8"):
        readers.read_ml1m(Container(folder))
    interactions, items = readers.read_ml1m(Container(folder), encoding="utf-8")   # the fix works
    assert items["title"].iloc[0] == "Amélie"


def test_latin1_file_where_utf8_expected(tmp_path):
    file = write_csv(tmp_path / "inter.csv")
    file.write_bytes(file.read_text(encoding="utf-8").encode("latin-1"))
    with pytest.raises(DataError, match=r"inter.csv, line 2: bytes .* are not valid utf-8; set dataset.encoding"):
        readers.read_csv(Container(tmp_path).read("inter.csv"), separator=",", encoding="utf-8",
                         user_col="user_id", item_col="item_id", timestamp_col="timestamp", title_col="title")


def test_utf16_file(tmp_path):
    folder = write_ml1m(tmp_path / "ml-1m")
    (folder / "ratings.dat").write_bytes("1::10::5::100\n".encode("utf-16"))
    with pytest.raises(DataError, match=r"ratings.dat: looks UTF-16"):
        readers.read_ml1m(Container(folder))


def test_csv_missing_columns_names_them(tmp_path):
    file = write_csv(tmp_path / "inter.csv", sep=";")
    with pytest.raises(DataError, match=r"inter.csv, line 1: expected a header with column\(s\) user_id, item_id"):
        readers.read_csv(Container(tmp_path).read(file.name), separator=",", encoding="utf-8", user_col="user_id",
                         item_col="item_id", timestamp_col="timestamp")


def test_recbole_header_without_types(tmp_path):
    folder = write_recbole(tmp_path / "r", "r")
    _replace_line(folder / "r.inter", 1, "user_id\titem_id\trating\ttimestamp", encoding="utf-8")
    with pytest.raises(DataError, match=r"r.inter, line 1: expected a RecBole header"):
        readers.read_recbole(Container(folder), "r")


def test_empty_file(tmp_path):
    folder = write_ml1m(tmp_path / "ml-1m")
    (folder / "ratings.dat").write_text("\n")
    with pytest.raises(DataError, match="ratings.dat is empty"):
        readers.read_ml1m(Container(folder))


def _prepare(tmp_path, *overrides):
    return main(["data", "prepare", f"paths.data_dir={tmp_path / 'data'}", f"paths.cache_dir={tmp_path / 'cache'}",
                 *overrides])


def test_cli_bad_input_keeps_previous_output(tmp_path, capsys):
    folder = write_grouplens_100k(tmp_path / "ml-100k")
    assert _prepare(tmp_path, f"dataset.path={folder}") == 0
    out = tmp_path / "data" / "ml-100k"
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    _replace_line(folder / "u.data", 2, "2\t20\t3\tnoon")
    assert _prepare(tmp_path, f"dataset.path={folder}") == 2
    assert "u.data, line 2: expected a number for timestamp" in capsys.readouterr().err
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before           # old output untouched
    assert [p.name for p in (tmp_path / "data").iterdir() if p.is_dir()] == ["ml-100k"]   # no temp folders left


def test_cli_empty_result_writes_nothing(tmp_path, capsys):
    folder = write_grouplens_100k(tmp_path / "ml-100k")
    assert _prepare(tmp_path, f"dataset.path={folder}", "dataset.min_user_interactions=50") == 2
    assert "u.data: no interactions left after dropping users with fewer than 50" in capsys.readouterr().err
    assert not (tmp_path / "data").exists() or not any(p.is_dir() for p in (tmp_path / "data").iterdir())


@pytest.mark.parametrize("override, message", [
    ("dataset.min_user_interactions=2", "min_user_interactions=2 is not valid"),
    ("dataset.limit=0", "dataset.limit=0 is not valid"),
    ("dataset=ml-10m", "unknown dataset 'ml-10m'; choose one of: csv, ml-100k, ml-1m, recbole"),
    ("dataset.pth=x", "unknown config key 'dataset.pth'"),
])
def test_cli_bad_config(tmp_path, capsys, override, message):
    assert _prepare(tmp_path, override) == 2
    assert message in capsys.readouterr().err


def test_cli_path_required_for_local_formats(tmp_path, capsys):
    assert _prepare(tmp_path, "dataset=ml-1m") == 2
    assert "dataset=ml-1m needs dataset.path" in capsys.readouterr().err


def test_ml100k_path_without_movielens_files(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert _prepare(tmp_path, f"dataset.path={tmp_path / 'empty'}") == 2
    assert "holds neither u.data and u.item" in capsys.readouterr().err


def test_ensure_prepared_validates_like_the_command(tmp_path):
    from recdistill.config.compose import compose
    from recdistill.recipes.prepare import ensure_prepared_from as ensure_prepared
    from recdistill.errors import ConfigError

    cfg = compose("prepare", [f"paths.data_dir={tmp_path}", "dataset.min_user_interactions=0"])
    with pytest.raises(ConfigError, match="min_user_interactions=0 is not valid"):
        ensure_prepared(cfg)


def test_recbole_without_timestamp_column(tmp_path):
    folder = tmp_path / "r"
    folder.mkdir()
    (folder / "r.inter").write_text("user_id:token\titem_id:token\trating:float\n1\t2\t3\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"r.inter, line 1: expected a timestamp column \(one of timestamp\), "
                                        r"found user_id, item_id, rating"):
        readers.read_recbole(Container(folder), "r")
