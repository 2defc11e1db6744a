"""`recdistill add-items`: new items join a distilled model without retraining, and a running service picks
them up on `POST /reload`. Tiny Llama, tiny data, a real ONNX export and a real uvicorn server on loopback."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from recdistill.cli import main


@pytest.fixture(scope="module")
def distilled(tmp_path_factory):
    """A tiny distilled student trained from `embed-items` embeddings, and the same checkpoint with every ID
    row zeroed (so its scores come from the items' text alone, which makes "similar" exact)."""
    from conftest import make_tiny_prepared
    from recdistill.config import compose
    from recdistill.recipes.distill import train_distill
    from recdistill.recipes.embed_items import embed_items
    from teacher_fixtures import CACHE

    root = tmp_path_factory.mktemp("add_items")
    prepared = make_tiny_prepared(root / "data" / "tiny")
    common = [f"prepared={prepared}", f"paths.runs_dir={root / 'runs'}", f"paths.cache_dir={CACHE}"]
    emb = embed_items(compose("embed_items", common + ["llm=tiny-llama", f"embed.out={root / 'emb'}",
                                                       "embed.progress_bar=false"]))
    result = train_distill(compose("distill", common + ["run.progress_bar=false", f"distill.item_embeddings={emb}",
                                                        "distill.kd.weight=0", "distill.ed.gamma=1.0",
                                                        "train.max_epochs=2", "train.batch_size=8"]))
    ckpt = result.artefacts["best_checkpoint"]
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    state["state_dict"]["model.item_embedding.weight"].zero_()
    content_only = root / "content-only.ckpt"
    torch.save(state, content_only)
    return {"root": root, "ckpt": ckpt, "content_only": content_only, "prepared": prepared}


def _scores(folder, history):
    from recdistill.serve.scorers import pad_histories
    from recdistill.serve.source import open_model

    served = open_model(folder)
    padded, _ = pad_histories([np.asarray(history)], served.max_len)
    return served, served.scorer(padded)[0]


def test_added_item_scores_like_its_text_twin_and_old_items_do_not_move(distilled, tmp_path):
    items = tmp_path / "new.csv"
    # the tiny catalogue's item 7 is "Movie 7" (1997), Drama: a new release with the same text is its twin
    items.write_text("title,year,genres,original_id\nMovie 7,1997,Drama,n1\nSomething Else,2024,Comedy|Drama,n2\n")
    before, after = tmp_path / "before", tmp_path / "after"
    assert main(["export-model", str(distilled["content_only"]), "--out", str(before)]) == 0
    assert main(["add-items", str(distilled["content_only"]), str(items), "--out", str(after)]) == 0
    history = [1, 2, 3]
    old, s_old = _scores(before, history)
    new, s_new = _scores(after, history)
    assert new.catalogue.num_items == old.catalogue.num_items + 2 == 42
    assert new.catalogue.titles[41] == "Movie 7" and new.catalogue.original_ids[42] == "n2"
    assert np.allclose(s_new[:41], s_old, atol=1e-5)               # every existing item scores as before
    assert abs(float(s_new[41]) - float(s_new[7])) < 1e-4          # the twin scores as its text says
    # a user whose history makes item 7 the best unseen item gets the new release recommended beside it
    unseen = [i for i in range(1, 41) if i not in history]
    best = max(unseen, key=lambda i: float(s_old[i]))
    twin = tmp_path / "twin.csv"
    twin.write_text(f"title,year,genres\nMovie {best},{1990 + best % 10},Drama\n")
    assert main(["add-items", str(distilled["content_only"]), str(twin), "--out", str(tmp_path / "twin")]) == 0
    rows = tmp_path / "rows.jsonl"
    assert main(["recommend", str(tmp_path / "twin"), "--history", *map(str, history), "-k", "2", "--out", str(rows)]) == 0
    top = [json.loads(line)["item"] for line in rows.read_text().splitlines()]
    assert set(top) == {best, 41}
    meta = json.loads((after / "model.json").read_text())
    assert meta["added_items"]["count"] == 2 and meta["added_items"]["embed_seconds"] > 0


def test_trained_model_with_id_rows_still_ranks_new_items_by_text(distilled, tmp_path):
    items = tmp_path / "new.csv"
    items.write_text("title\nA Brand New Film\n")
    assert main(["add-items", str(distilled["ckpt"]), str(items), "--out", str(tmp_path / "m")]) == 0
    served, scores = _scores(tmp_path / "m", [1, 2])
    assert served.catalogue.num_items == 41 and np.isfinite(scores[41])


@pytest.mark.parametrize("text, message", [
    ("name\nX\n", "no 'title' column"),
    ("title,year\nX,soon\n", "year must be a whole number"),
    ("title\n\n", "lists no items"),
])
def test_bad_items_files_are_clear_errors(distilled, tmp_path, capsys, text, message):
    items = tmp_path / "bad.csv"
    items.write_text(text)
    assert main(["add-items", str(distilled["ckpt"]), str(items), "--out", str(tmp_path / "x")]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_a_student_without_llm_embeddings_is_refused(tiny_recommenders, tmp_path, capsys):
    items = tmp_path / "new.csv"
    items.write_text("title\nX\n")
    assert main(["add-items", str(tiny_recommenders["student"]), str(items)]) == 2
    assert "distill.item_embeddings" in capsys.readouterr().err


def test_serve_reload_picks_up_added_items(distilled, tmp_path):
    from recdistill.serve.http_app import build_app
    from recdistill.serve.source import open_model
    from serve_helpers import call, running

    folder = tmp_path / "served"
    assert main(["export-model", str(distilled["ckpt"]), "--out", str(folder)]) == 0
    with running(build_app(open_model(folder), max_k=50, reopen=lambda: open_model(folder))) as base:
        assert call(base, "GET", "/health")[1]["items"] == 40
        assert call(base, "GET", "/items/41")[0] == 404
        items = tmp_path / "new.csv"
        items.write_text("title,year,genres\nThe New One,2025,Drama\n")
        assert main(["add-items", str(distilled["ckpt"]), str(items), "--out", str(folder)]) == 0
        status, body = call(base, "POST", "/reload")
        assert status == 200 and body["items"] == 41
        assert call(base, "GET", "/items/41") == (200, {"item": 41, "original_id": "new-41", "title": "The New One"})
        status, body = call(base, "POST", "/recommend", {"history": ["The New One"], "k": 5})
        assert status == 200 and len(body["items"]) == 5
        # a reload that fails keeps the model that serves
        (folder / "model.onnx").write_bytes(b"not a model")
        status, body = call(base, "POST", "/reload")
        assert status == 409 and "still serving" in body["error"]
        assert call(base, "GET", "/health")[1]["items"] == 41
