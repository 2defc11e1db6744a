"""The new-items protocol, the popularity buckets, the baselines and the item-text embeddings: each part
on small data these tests write, and the whole path (`train distill` from item embeddings alone on data
with held-out items) on the tiny prepared dataset."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch

from data_files import split_options
from recdistill.data.new_items import check_new_items, choose_new_items, remove_from_training
from recdistill.errors import ConfigError, DataError
from recdistill.evaluation.buckets import bucket_masks, bucket_metrics, cut_points


def _interactions(users=40, items=30, length=12, seed=0):
    rng = np.random.default_rng(seed)
    rows = []
    for u in range(1, users + 1):
        for t, i in enumerate(rng.choice(np.arange(1, items + 1), size=length, replace=False)):
            rows.append({"user": u, "item": int(i), "timestamp": 1000 * u + t, "rating": 4})
    return pd.DataFrame(rows)


def test_held_out_items_leave_training_and_stay_as_targets():
    from recdistill.data.prepare import hold_out_new_items
    from recdistill.data.split import leave_one_out

    split = leave_one_out(_interactions(), None, split_options())
    before = int(split.counts["train_interactions"])
    info = hold_out_new_items(split, 0.2, "random", 3)
    new = set(info["items"])
    assert len(new) == 6                                                  # 20 % of 30 items
    assert not any(set(map(int, items)) & new for items in split.train["items"])
    assert split.counts["train_interactions"] == before - info["removed_train_interactions"] > 0
    assert info["val_users"] == int(split.val["target"].isin(new).sum())   # targets are kept
    # the same seed picks the same items; another seed others
    again = leave_one_out(_interactions(), None, split_options())
    assert hold_out_new_items(again, 0.2, "random", 3)["items"] == info["items"]
    other = leave_one_out(_interactions(), None, split_options())
    assert hold_out_new_items(other, 0.2, "random", 4)["items"] != info["items"]
    assert hold_out_new_items(leave_one_out(_interactions(), None, split_options()), 0.0, "random", 0) is None


def test_last_in_time_takes_the_latest_first_appearances():
    first = np.array([np.inf, 5.0, 1.0, 9.0, 7.0])
    assert choose_new_items(4, 0.5, "last", 0, first).tolist() == [3, 4]


@pytest.mark.parametrize("share", [-0.1, 1.0, "a", True])
def test_bad_shares_are_config_errors(share):
    with pytest.raises(ConfigError, match="dataset.new_items"):
        check_new_items(share, "random")
    with pytest.raises(ConfigError, match="new_items_by"):
        check_new_items(0.1, "newest")


def test_a_user_left_without_training_items_is_an_error():
    from recdistill.data.prepare import hold_out_new_items
    from recdistill.data.split import leave_one_out

    # user 1's only training item (5) is the item seen first latest, so "last" holds it out
    frame = pd.DataFrame({"user": [1, 1, 1, 2, 2, 2, 2], "item": [5, 2, 3, 2, 3, 1, 4], "rating": [4] * 7,
                          "timestamp": [10, 11, 12, 1, 2, 3, 4]})
    split = leave_one_out(frame, None, split_options())
    with pytest.raises(DataError, match="no training interaction"):
        hold_out_new_items(split, 0.2, "last", 0)


def test_remove_from_training_counts_what_it_removes():
    train = pd.DataFrame({"user": [1, 2], "items": [np.array([1, 2, 3]), np.array([3, 4])],
                          "timestamps": [np.array([1, 2, 3]), np.array([1, 2])]})
    out, removed = remove_from_training(train, np.array([3]))
    assert removed == 2 and [x.tolist() for x in out["items"]] == [[1, 2], [4]]
    assert [x.tolist() for x in out["timestamps"]] == [[1, 2], [2]]


def test_buckets_cut_by_training_counts():
    counts = np.array([0, 0, 1, 2, 3, 4, 5, 6, 7, 8, 100])       # item 1 new; 10 known items
    tail_max, head_min = cut_points(counts)
    assert (tail_max, head_min) == (5, 8)                          # lowest 50 % of known: 1..5; top 20 %: 8, 100
    masks = bucket_masks(torch.tensor([1, 2, 7, 10]), counts)
    assert masks["new"].tolist() == [True, False, False, False]
    assert masks["tail"].tolist() == [False, True, False, False]
    assert masks["torso"].tolist() == [False, False, True, False]
    assert masks["head"].tolist() == [False, False, False, True]
    metrics = bucket_metrics(torch.tensor([0, 50, 3, 0]), torch.tensor([1, 2, 7, 10]), torch.full((4,), 11), counts, "test")
    assert metrics["test/new_ndcg@10"] == 1.0 and metrics["test/tail_ndcg@10"] == 0.0
    assert metrics["test/new_users"] == 1 and metrics["test/warm_users"] == 3
    # no new target: no new / warm rows
    assert "test/new_users" not in bucket_metrics(torch.tensor([0]), torch.tensor([10]), torch.tensor([11]), counts, "test")


def test_content_baseline_ranks_the_item_whose_text_matches_the_history(tiny_prepared):
    from recdistill.data.prepared import load_prepared
    from recdistill.evaluation.baselines import baseline_metrics, baseline_scores

    data = load_prepared(tiny_prepared)
    # every item's embedding says which "genre" (item id mod 2) it has; user 1's history is mixed, so
    # give the target the history's exact mean direction instead
    emb = torch.randn(data.num_items + 1, 8, generator=torch.Generator().manual_seed(0))
    history = data.history("test", 1)
    target = data.target("test", 1)
    centred_mean = emb[1:].mean(0)
    emb[target] = (emb[torch.as_tensor(history)] - centred_mean).mean(0) * 10 + centred_mean
    scores = baseline_scores("content", data, "test", emb)
    unseen = [i for i in range(1, data.num_items + 1) if i not in set(history.tolist())]
    assert max(unseen, key=lambda i: float(scores[0, i])) == target
    pop = baseline_metrics("popularity", data, "test")
    assert 0.0 <= pop["test/ndcg@10"] <= 1.0 and pop["test/users"] == data.num_users
    with pytest.raises(ValueError, match="embed-items"):
        baseline_scores("content", data, "test", None)


def test_training_catalogue_leaves_unseen_items_out_of_the_softmax():
    from recdistill.student.module import TrainingCatalogue, catalogue_cross_entropy

    counts = np.array([0, 3, 0, 2, 1])                   # item 2 never seen in training
    catalogue = TrainingCatalogue(counts)
    table = torch.randn(5, 4, requires_grad=True)
    h = torch.randn(6, 4)
    targets = torch.tensor([1, 3, 4, 1, 3, 4])
    catalogue_cross_entropy(h, table, targets, catalogue).backward()
    assert torch.all(table.grad[2] == 0) and torch.any(table.grad[1] != 0)
    plain = torch.nn.functional.cross_entropy(h @ table[[1, 3, 4]].detach().t(), torch.tensor([0, 1, 2, 0, 1, 2]))
    assert torch.isclose(catalogue_cross_entropy(h, table.detach(), targets, catalogue), plain, atol=1e-5)


def test_item_text_reads_title_year_and_genres():
    from recdistill.teacher.item_text import catalogue_texts, item_text

    assert item_text("Toy Story", 1995, ["Animation", "Comedy"]) == "Toy Story (1995). Genres: Animation, Comedy."
    assert item_text("Unknown", None, None) == "Unknown."
    assert item_text("Unknown", pd.NA, []) == "Unknown."
    assert item_text("Toy Story", 1995, ["Comedy"], how="title") == "Toy Story"
    items = pd.DataFrame({"title": ["A", "B"], "year": pd.array([2000, None], dtype="Int32"), "genres": [["X"], None]})
    assert catalogue_texts(items) == ["", "A (2000). Genres: X.", "B."]


def test_embed_items_then_distill_from_them_alone(tmp_path):
    """`embed-items` on the tiny Llama, then `train distill` with those embeddings and no teacher outputs,
    on tiny data where two items are held out: they are never trained on, their ID rows are zero, and the
    run reports the new-item table."""
    from conftest import make_tiny_prepared
    from recdistill.config import compose
    from recdistill.recipes.distill import train_distill
    from recdistill.recipes.embed_items import embed_items
    from recdistill.teacher.item_embeddings import read_item_embeddings
    from recdistill.student.checkpoint import load_recommender
    from teacher_fixtures import CACHE

    prepared = make_tiny_prepared(tmp_path / "data" / "tiny")
    stats = json.loads((prepared / "stats.json").read_text())
    from recdistill.data.prepared import load_prepared

    data = load_prepared(prepared)
    held = sorted({data.target("test", 1), data.target("test", 2)})
    train = pd.read_parquet(prepared / "train.parquet")
    keep = [~np.isin(np.asarray(x), held) for x in train["items"]]
    train["items"] = [np.asarray(x)[k] for x, k in zip(train["items"], keep)]
    train["timestamps"] = [np.asarray(x)[k] for x, k in zip(train["timestamps"], keep)]
    train.to_parquet(prepared / "train.parquet")
    stats["new_items"] = {"items": held}
    (prepared / "stats.json").write_text(json.dumps(stats))

    common = [f"prepared={prepared}", f"paths.runs_dir={tmp_path / 'runs'}", f"paths.cache_dir={CACHE}"]
    path = embed_items(compose("embed_items", common + ["llm=tiny-llama", f"embed.out={tmp_path / 'emb'}",
                                                        "embed.progress_bar=false"]))
    emb, meta = read_item_embeddings(path, data.num_items)
    assert emb.shape == (data.num_items + 1, 64) and torch.all(emb[0] == 0) and meta["text"] == "title_year_genres"
    with pytest.raises(DataError, match="holds 40 items, the dataset 41"):
        read_item_embeddings(path, data.num_items + 1)

    result = train_distill(compose("distill", common + [
        "run.progress_bar=false", f"distill.item_embeddings={path}", "distill.kd.weight=0", "distill.ed.id_dropout=0.3",
        "train.max_epochs=2", "train.batch_size=8"]))
    assert result.metrics["teacher_coverage"] == 0.0 and result.info["teacher"]["item_embeddings"] == str(path)
    assert result.metrics["test/new_users"] >= 1 and "test/new_ndcg@10" in result.metrics
    model = load_recommender(result.artefacts["best_checkpoint"]).model
    assert torch.all(model.item_embedding.weight[torch.as_tensor(held)] == 0)
    assert not model.training  # id_dropout acts in training only; the loaded model scores with every ID row
    with pytest.raises(ConfigError, match="item_embeddings"):
        train_distill(compose("distill", common + ["distill.kd.weight=0"]))


def test_column_bias_leaves_classes_out_of_the_softmax_but_not_out_of_a_fused_extra_term():
    from recdistill.layers.fused_ce import linear_cross_entropy

    torch.manual_seed(0)
    h, weight = torch.randn(7, 4), torch.randn(5, 4, requires_grad=True)
    targets = torch.tensor([0, 1, 3, 4, 0, 1, 3])
    bias = torch.tensor([0.0, 0.0, float("-inf"), 0.0, 0.0])       # class 2 left out
    seen_by_extra = []

    def extra(logits, start, end):
        seen_by_extra.append(torch.isfinite(logits[:, 2]).all().item())
        return logits.new_zeros(()), torch.zeros(0, dtype=torch.long), torch.zeros(0, dtype=torch.long), logits.new_zeros(0)

    loss = linear_cross_entropy(h, weight, targets, chunk=3, extra=extra, column_bias=bias)
    loss.backward()
    keep = [0, 1, 3, 4]
    remap = torch.tensor([0, 1, -1, 2, 3])
    plain = torch.nn.functional.cross_entropy(h @ weight.detach()[keep].t(), remap[targets])
    assert torch.isclose(loss, plain, atol=1e-5) and torch.all(weight.grad[2] == 0)
    assert seen_by_extra and all(seen_by_extra)                     # the ranking term still reads real scores
