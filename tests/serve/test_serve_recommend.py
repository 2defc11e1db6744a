"""`recdistill recommend`: top-K per user or per given history, seen items left out (or not), titles
matched to the catalogue, parquet / JSON-lines output, clear errors."""

import json

import numpy as np
import pandas as pd
import pytest
import torch

from recdistill.cli import main
from recdistill.data.prepared import load_prepared
from recdistill.errors import RecdistillError
from recdistill.serve.catalogue import Catalogue
from recdistill.serve.recommend import recommend_histories, top_k
from recdistill.serve.scorers import TorchScorer, frozen_student, pad_histories
from recdistill.serve.source import open_model
from recdistill.student.checkpoint import load_recommender


def test_pad_and_top_k_by_hand():
    padded, cut = pad_histories([[3, 4], [1, 2, 3, 4, 5]], 3)
    assert padded.tolist() == [[0, 3, 4], [3, 4, 5]] and cut.tolist() == [0, 2]
    scores = np.array([[-np.inf, 5, 4, 3, 2, 1]], dtype=np.float32)
    (ids, values), = top_k(scores, [np.array([1, 3])], k=3)
    assert ids.tolist() == [2, 4, 5] and values.tolist() == [4, 2, 1]
    (ids, _), = top_k(scores, [np.array([1, 3])], k=3, exclude_seen=False)
    assert ids.tolist() == [1, 2, 3]
    (ids, _), = top_k(scores, [np.array([1, 2, 3])], k=10)  # fewer left than k: no padding, no -inf rows
    assert ids.tolist() == [4, 5]


@pytest.mark.parametrize("kind", ["student", "distill"])
def test_scores_match_the_training_model(tiny_recommenders, kind):
    """The serving path (frozen item table, padded to max_len) scores like the trained model itself."""
    rec = load_recommender(tiny_recommenders[kind])
    seq = torch.tensor([[0, 0, 0, 5, 6, 7, 8, 9], [0, 0, 0, 0, 0, 0, 1, 2]])
    with torch.no_grad():
        expected = rec.model.score_all(rec.model.user_representation(seq))
        frozen = frozen_student(rec.model)
        got = frozen.score_all(frozen.user_representation(seq))
    torch.testing.assert_close(got, expected)
    scores = TorchScorer(rec.model)(seq.numpy())
    assert np.isneginf(scores[:, 0]).all()
    np.testing.assert_allclose(scores[:, 1:], expected[:, 1:].numpy(), rtol=1e-5, atol=1e-5)


def test_recommend_users_and_outputs(tiny_recommenders, tmp_path, capsys):
    ckpt = str(tiny_recommenders["distill"])
    out = tmp_path / "recs.parquet"
    assert main(["recommend", ckpt, "--users", "1,2", "-k", "4", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "user 1" in printed and "Movie" in printed
    frame = pd.read_parquet(out)
    assert list(frame.columns) == ["user", "rank", "item", "original_id", "title", "score"]
    assert len(frame) == 8 and frame.groupby("user")["rank"].apply(list).tolist() == [[1, 2, 3, 4]] * 2
    data = load_prepared(tiny_recommenders["prepared"])
    catalogue = Catalogue.from_prepared(data)
    for user, rows in frame.groupby("user"):
        assert not set(rows["item"]) & set(catalogue.history(int(user)).tolist())  # seen left out
        assert (np.diff(rows["score"].to_numpy()) <= 0).all()
        assert rows["title"].tolist() == [f"Movie {i}" for i in rows["item"]]
    # the same users through the component give the same items
    served = open_model(ckpt)
    results = recommend_histories(served.scorer, served.max_len, [catalogue.history(1)], 4)
    assert results[0][0].tolist() == frame[frame.user == 1]["item"].tolist()
    # --include-seen lets history items back in
    jsonl = tmp_path / "all.jsonl"
    assert main(["recommend", ckpt, "--all-users", "-k", "40", "--include-seen", "--out", str(jsonl),
                 "--batch-size", "7"]) == 0
    rows = [json.loads(line) for line in jsonl.read_text().splitlines()]
    assert len(rows) == 30 * 40 and {r["user"] for r in rows} == set(range(1, 31))
    assert "recommend: 30/30 users" in capsys.readouterr().err  # the log-file progress line


def test_recommend_a_history_by_titles_and_file(tiny_recommenders, tmp_path, capsys):
    ckpt = str(tiny_recommenders["student"])
    assert main(["recommend", ckpt, "--history", "movie 3", "4", "Movie 5 (1995)", "-k", "3"]) == 0
    by_args = capsys.readouterr().out
    history = tmp_path / "history.txt"
    history.write_text("Movie 3\n\n4\nMovie 5\n")
    assert main(["recommend", ckpt, "--history-file", str(history), "-k", "3"]) == 0
    assert capsys.readouterr().out == by_args
    assert "Movie 3 " not in by_args and "user history" in by_args


@pytest.mark.parametrize("argv, message", [
    (["--history", "Movie 999"], "unknown item 'Movie 999'"),
    (["--history", "Movi 7"], "did you mean: Movie 7"),
    (["--history", "41"], "unknown item id 41: item ids run from 1 to 40"),
    (["--users", "31"], "unknown user 31"),
    (["--users", "a,b"], "is not a list of user ids"),
    ([], "choose exactly one of"),
    (["--users", "1", "--all-users"], "got --users, --all-users"),
    (["--users", "1", "-k", "0"], "k=0 is not valid"),
    (["--users", "1", "--out", "x.csv"], "choose a .parquet or a .jsonl"),
])
def test_bad_requests_are_clear_errors(tiny_recommenders, capsys, argv, message):
    assert main(["recommend", str(tiny_recommenders["student"]), *argv]) == 2
    assert message in capsys.readouterr().err


@pytest.mark.parametrize("command", [["recommend", "--users", "1"], ["export-model"], ["serve"]])
def test_serving_commands_take_no_config(tiny_recommenders, capsys, command):
    """No config, so no efficiency knob: an override is refused by the parser, not silently ignored."""
    with pytest.raises(SystemExit) as exc:
        main([command[0], str(tiny_recommenders["student"]), *command[1:], "efficiency.seed=3"])
    assert exc.value.code == 2 and "unrecognized arguments: efficiency.seed=3" in capsys.readouterr().err


def test_other_dataset_and_missing_history(tiny_recommenders, tmp_path, capsys):
    from tests.conftest import make_tiny_prepared

    other = make_tiny_prepared(tmp_path / "other", num_items=50, seed=5)
    assert main(["recommend", str(tiny_recommenders["student"]), "--data", str(other), "--users", "1"]) == 2
    assert "fingerprint" in capsys.readouterr().err
    with pytest.raises(RecdistillError, match="no history file"):
        from recdistill.serve.catalogue import read_history_file
        read_history_file(tmp_path / "nope.txt")


def test_missing_training_dataset_asks_for_data(tiny_recommenders, tmp_path, capsys):
    ckpt = torch.load(tiny_recommenders["student"], map_location="cpu", weights_only=True)
    ckpt["hyper_parameters"]["cfg"]["prepared"] = str(tmp_path / "gone")
    ckpt["hyper_parameters"]["dataset_meta"]["path"] = str(tmp_path / "gone")
    moved = tmp_path / "moved.ckpt"
    torch.save(ckpt, moved)
    assert main(["recommend", str(moved), "--users", "1"]) == 2
    assert "pass its folder with --data" in capsys.readouterr().err
    assert main(["recommend", str(moved), "--users", "1", "--data", str(tiny_recommenders["prepared"])]) == 0
