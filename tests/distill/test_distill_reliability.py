"""distill.kd.reliability: the rules keep exactly the positions they say, and nothing else gets a weight."""

import numpy as np
import pytest

from recdistill.distill.reliability import reliable, target_buckets, teacher_better_buckets
from recdistill.errors import ConfigError

ITEMS = np.array([[3, 4, 5], [6, 7, 0], [1, 2, 3], [9, 8, 7]])
TARGETS = np.array([4, 5, 3, 9])


def test_teacher_hit_keeps_only_rows_whose_list_holds_the_target():
    assert reliable("teacher_hit", ITEMS, TARGETS).tolist() == [True, False, True, True]
    assert reliable("none", ITEMS, TARGETS).all()


def test_teacher_hit_never_matches_padding():
    assert not reliable("teacher_hit", np.array([[0, 0]]), np.array([0])).any()


def test_bucket_rule_follows_the_teacher_check():
    counts = np.array([0, 50, 40, 30, 20, 10, 5, 3, 2, 1, 0])   # item 10 has no training interaction
    check = {"teacher": {"head": {"ndcg@10": 0.1}, "tail": {"ndcg@10": 0.5}, "torso": {"ndcg@10": 0.2}},
             "student": {"head": {"ndcg@10": 0.3}, "tail": {"ndcg@10": 0.2}, "torso": {"ndcg@10": 0.2}}}
    better = teacher_better_buckets(check)
    assert better == {"tail"}
    targets = np.arange(1, 11)
    keep = reliable("teacher_buckets", np.zeros((10, 2), np.int64), targets, counts, better)
    assert keep.tolist() == (target_buckets(targets, counts) == "tail").tolist()
    assert keep.any() and not keep.all()


def test_bad_rule_and_missing_check_are_clear_errors():
    with pytest.raises(ConfigError, match="reliability"):
        reliable("sometimes", ITEMS, TARGETS)
    with pytest.raises(ConfigError, match="teacher check"):
        teacher_better_buckets({"teacher": {}})


def test_the_data_module_gives_no_teacher_row_to_an_excluded_position(tmp_path):
    """End to end through the data module: every slot left with a teacher row passes the rule, every slot
    the rule excludes has none, so the ranking term cannot weigh it."""
    from conftest import make_tiny_prepared
    from recdistill.data.prepared import load_prepared
    from recdistill.distill.data import DistillDataModule
    from recdistill.teacher_outputs.reader import load_teacher_outputs
    from tests.distill.test_distill_train import export_settings
    from recdistill.teacher_outputs.build import export_files, student_ranker
    from teacher_fixtures import make_student, write_student_checkpoint

    data = load_prepared(make_tiny_prepared(tmp_path / "data"))
    ckpt = write_student_checkpoint(tmp_path / "s.ckpt", make_student(), data)
    export_files(export_settings(candidates="all", top_k=3, shard_rows=50, progress_bar=False),
                 student_ranker([ckpt], data, True, "cpu"), data, tmp_path / "out")
    teacher = load_teacher_outputs(tmp_path / "out", data.train, data.fingerprint, data.num_items)
    common = dict(max_len=8, batch_size=8, eval_batch_size=8, loader_kwargs={}, num_negatives=1,
                  negatives_from_history=False, sampled_negatives=0, sampled_seed=0)
    every = DistillDataModule(data, teacher, **common)
    hits = DistillDataModule(data, teacher, reliability="teacher_hit", **common)
    every.setup(), hits.setup()
    slots = every.teacher_rows >= 0
    kept = hits.teacher_rows >= 0
    assert (kept <= slots).all() and kept.sum() < slots.sum()
    targets = every.windows.targets
    in_list = (teacher.items[every.teacher_rows[slots]] == targets[slots][:, None]).any(1)
    assert (kept[slots] == in_list).all()
