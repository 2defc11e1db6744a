"""What users type and point at, for `recommend` and `serve`: history files in any encoding (read, or a clear
error), titles compared after Unicode NFC, an entry that is both an item id and a title refused unless
written id:/title:, and bad --out paths or damaged export folders as one clear line, never a traceback.
HTTP cases run against a real server on loopback, each followed by a good request."""

from __future__ import annotations

import json
import unicodedata

import numpy as np
import pyarrow.parquet as pq
import pytest
from serve_helpers import call, running

from recdistill.cli import main
from recdistill.errors import RecdistillError
from recdistill.serve.catalogue import Catalogue
from recdistill.serve.http_app import build_app
from recdistill.serve.source import open_model

NFC_TITLE = "Misérables, Les"
NFD_TITLE = unicodedata.normalize("NFD", NFC_TITLE)


@pytest.fixture(scope="module")
def odd_titles(tiny_recommenders, tmp_path_factory):
    """An export of the tiny student whose item 5 is titled "7" and item 6 "Misérables, Les" (stored NFC)."""
    folder = tmp_path_factory.mktemp("odd") / "model"
    assert main(["export-model", str(tiny_recommenders["student"]), "--out", str(folder)]) == 0
    items = pq.read_table(folder / "items.parquet").to_pandas()
    items.loc[items["item"] == 5, "title"] = "7"
    items.loc[items["item"] == 6, "title"] = NFC_TITLE
    items.to_parquet(folder / "items.parquet", index=False)
    return folder


def test_catalogue_matching_rules():
    titles = np.asarray(["", "Alpha", "187", NFD_TITLE, "Beta"], dtype=object)
    cat = Catalogue(np.asarray(["", "a", "b", "c", "d"], dtype=object), titles, {1: np.array([1])})
    assert cat.item_id(NFC_TITLE) == cat.item_id(NFD_TITLE) == cat.item_id(NFC_TITLE.upper()) == 3
    assert cat.item_id(4) == 4 and cat.item_id("4") == 4  # a digit string that is no title: the id
    assert cat.item_id("2") == 2  # "2" is item 2's id and no title
    with pytest.raises(RecdistillError, match="unknown item id 187"):
        cat.item_id("id:187")
    assert cat.item_id("title:187") == 2 and cat.item_id("ID: 3") == 3 and cat.item_id("Title:alpha") == 1
    with pytest.raises(RecdistillError, match="after 'id:' give an item id"):
        cat.item_id("id:Alpha")
    cat2 = Catalogue(cat.original_ids, np.asarray(["", "Alpha", "3", "Gamma", "Beta"], dtype=object), cat.histories)
    with pytest.raises(RecdistillError, match=r"'3' is ambiguous: item id 3 and the title of item 2; write id:3 or title:3"):
        cat2.item_id("3")
    assert cat2.item_id("id:3") == 3 and cat2.item_id("title:3") == 2 and cat2.item_id(3) == 3


def _recommend_history_file(folder, tmp_path, data: bytes, capsys) -> tuple[int, str, str]:
    path = tmp_path / "history.txt"
    path.write_bytes(data)
    out = tmp_path / "out.jsonl"
    out.unlink(missing_ok=True)
    rc = main(["recommend", str(folder), "--history-file", str(path), "-k", "3", "--out", str(out)])
    captured = capsys.readouterr()
    return rc, captured.err, out.read_text() if out.exists() else ""


def test_history_file_encodings(odd_titles, tmp_path, capsys):
    rc, err, plain = _recommend_history_file(odd_titles, tmp_path, f"{NFC_TITLE}\n4\n".encode(), capsys)
    assert rc == 0 and plain
    # a byte-order mark and decomposed (NFD) accents read as the same history
    rc, err, bom = _recommend_history_file(odd_titles, tmp_path, b"\xef\xbb\xbf" + f"{NFD_TITLE}\r\n4\r\n".encode(), capsys)
    assert rc == 0 and bom == plain
    rc, err, _ = _recommend_history_file(odd_titles, tmp_path, f"{NFC_TITLE}\n".encode("latin-1"), capsys)
    assert rc == 2 and "is not UTF-8 (byte 0xe9" in err and "iconv -f latin1" in err and "Traceback" not in err
    rc, err, _ = _recommend_history_file(odd_titles, tmp_path, b"PK\x03\x04\x00\x00binary", capsys)
    assert rc == 2 and "is binary" in err
    rc, err, _ = _recommend_history_file(odd_titles, tmp_path, "4\n".encode("utf-16"), capsys)
    assert rc == 2 and "is binary" in err
    assert main(["recommend", str(odd_titles), "--history-file", str(tmp_path), "-k", "3"]) == 2
    assert "is a folder" in capsys.readouterr().err


def test_an_id_that_is_also_a_title_needs_a_prefix(odd_titles, tmp_path, capsys):
    assert main(["recommend", str(odd_titles), "--history", "7", "-k", "3"]) == 2
    assert "'7' is ambiguous: item id 7 and the title of item 5; write id:7 or title:7" in capsys.readouterr().err
    for token, item in (("id:7", 7), ("title:7", 5)):
        out = tmp_path / f"{item}.jsonl"
        assert main(["recommend", str(odd_titles), "--history", token, "-k", "40", "--out", str(out)]) == 0
        assert item not in [json.loads(line)["item"] for line in out.read_text().splitlines()]  # seen: left out


def test_titles_and_prefixes_over_http(odd_titles):
    with running(build_app(open_model(odd_titles), max_k=20)) as base:
        good = call(base, "POST", "/recommend", {"history": [NFC_TITLE], "k": 3})
        assert good[0] == 200
        assert call(base, "POST", "/recommend", {"history": [NFD_TITLE], "k": 3}) == good
        status, body = call(base, "POST", "/recommend", {"history": ["7"], "k": 3})
        assert status == 422 and "ambiguous" in body["error"] and "id:7 or title:7" in body["error"]
        assert call(base, "POST", "/recommend", {"history": [6], "k": 3}) == good
        as_id = call(base, "POST", "/recommend", {"history": [7], "k": 3})  # a JSON number is always an id
        assert as_id[0] == 200 and call(base, "POST", "/recommend", {"history": ["id:7"], "k": 3}) == as_id
        status, body = call(base, "POST", "/recommend", {"history": ["title:7"], "k": 3})
        assert status == 200 and call(base, "POST", "/recommend", {"history": [5], "k": 3}) == (status, body)
        status, body = call(base, "POST", "/recommend", {"history": ["id:seven"], "k": 3})
        assert status == 422 and "after 'id:'" in body["error"]
        assert call(base, "POST", "/recommend", {"history": [NFC_TITLE], "k": 3}) == good


def test_bad_out_paths_are_clear_and_leave_files_alone(tiny_recommenders, tmp_path, capsys, monkeypatch):
    model = str(tiny_recommenders["student"])
    folder = tmp_path / "taken.jsonl"
    folder.mkdir()
    assert main(["recommend", model, "--users", "1", "--out", str(folder)]) == 2
    assert "is a folder; give a file name" in capsys.readouterr().err
    a_file = tmp_path / "file"
    a_file.write_text("x")
    assert main(["recommend", model, "--users", "1", "--out", str(a_file / "sub" / "r.jsonl")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    # not writable (checked up front; root may write anywhere, so the check is made to say no)
    monkeypatch.setattr("os.access", lambda path, mode: False)
    assert main(["recommend", model, "--users", "1", "--out", str(tmp_path / "r.jsonl")]) == 2
    assert "is not writable by you" in capsys.readouterr().err
    monkeypatch.undo()
    # a failure while writing (disk full, permissions changed meanwhile): an error line, the old file intact
    existing = tmp_path / "kept.jsonl"
    existing.write_text("earlier results\n")

    def full_disk(path, text):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr("recdistill.engine.rundir.atomic_write_text", full_disk)
    assert main(["recommend", model, "--users", "1", "--out", str(existing)]) == 2
    assert "cannot write --out" in capsys.readouterr().err and existing.read_text() == "earlier results\n"


@pytest.mark.parametrize("content", ['{"max_len": ', "[1, 2]", "{}", '{"max_len": "8", "num_items": 40}', ""])
def test_a_damaged_model_json_is_a_clear_error(tiny_recommenders, tmp_path, capsys, content):
    folder = tmp_path / "model"
    assert main(["export-model", str(tiny_recommenders["student"]), "--out", str(folder)]) == 0
    (folder / "model.json").write_text(content)
    for command in (["recommend", str(folder), "--users", "1"], ["serve", str(folder), "--port", "1"]):
        assert main(command) == 2
        err = capsys.readouterr().err
        assert "model.json" in err and "export the model again" in err, err
