"""The teacher's options "as published" (issue 24): validation candidates drawn without knowing the test item,
LLaRA / iLoRA's prompt strings (whole-string tokenization with the tokenizer's special tokens, a random
template in evaluation, MovieLens titles rewritten), and model selection on HR@1 x ValidRatio."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from lightning.pytorch.callbacks import Callback

from recdistill.data.prepared import load_prepared
from recdistill.evaluation.candidates import CandidateProtocol, draw_candidate_sets
from recdistill.teacher.data import PromptDataset, eval_samples
from recdistill.teacher.prompt_encoder import PromptEncoder, load_templates
from test_teacher_fixtures import prompt_settings, tokenizer


def _with_other_test_items(data):
    """The same data with every user's test item replaced by another item the user never touched."""
    changed = data.test_target.copy()
    for user in data.users():
        touched = set(data.train[int(user)].tolist()) | {int(data.val_target[int(user)]), int(changed[int(user)])}
        changed[int(user)] = next(i for i in range(1, data.num_items + 1) if i not in touched)
    return dataclasses.replace(data, test_target=changed)


def test_validation_candidates_do_not_depend_on_the_test_item(tiny_prepared):
    data = load_prepared(tiny_prepared)
    other = _with_other_test_items(data)
    protocol = CandidateProtocol(history_items=3, num_candidates=10, exclude="all", draws=1, seed=0)
    a, b = draw_candidate_sets(data, "val", protocol, 0), draw_candidate_sets(other, "val", protocol, 0)
    assert np.array_equal(a.candidates, b.candidates)
    # the teacher's own validation prompts (this toolkit's likelihood protocol) too
    enc = PromptEncoder(tokenizer(), data.titles, load_templates())
    sets = [PromptDataset(eval_samples(d, "val"), enc, d.num_items, prompt_settings(), "val", train=False)
            for d in (data, other)]
    for i in range(len(sets[0])):
        assert np.array_equal(sets[0].candidates(i), sets[1].candidates(i))
    # the test split still avoids everything the user touched up to its target
    t = draw_candidate_sets(data, "test", protocol, 0)
    for i in range(len(t.users)):
        assert not (set(t.candidates[i].tolist()) - {int(t.targets[i])}) & set(t.histories[i].tolist())


class MonitorsSeen(Callback):
    """Records, at the start of fit, what each checkpoint callback monitors, and at the end the best score."""

    def __init__(self):
        self.monitors, self.best_scores = [], []

    def on_fit_start(self, trainer, module):
        self.monitors = [cb.monitor for cb in trainer.checkpoint_callbacks if cb.monitor]

    def on_fit_end(self, trainer, module):
        self.best_scores = [cb.best_model_score for cb in trainer.checkpoint_callbacks if cb.monitor]


@pytest.mark.parametrize("select_on, method, expected", [
    ("likelihood_ndcg", "likelihood", "val/cand20_ndcg@10"),       # ours (the default)
    ("hr1_x_valid_ratio", "generate", "val/gen_hr@1"),             # LLaRA / iLoRA's selection
])
def test_select_on_changes_the_metric_the_checkpoint_monitors(tmp_path, select_on, method, expected):
    from conftest import make_tiny_prepared
    from recdistill.config import compose
    from recdistill.recipes.teacher import train_teacher
    from test_teacher_fixtures import CACHE, make_student, write_student_checkpoint

    prepared = make_tiny_prepared(tmp_path / "data" / "tiny")
    student = write_student_checkpoint(tmp_path / "student.ckpt", make_student(), load_prepared(prepared))
    cfg = compose("teacher", [
        f"prepared={prepared}", f"paths.runs_dir={tmp_path / 'runs'}", f"paths.cache_dir={CACHE}",
        "run.progress_bar=false", "llm=tiny-llama", f"teacher.student_checkpoint={student}", "train.batch_size=4",
        "train.limit_train_batches=1", "train.limit_val_batches=1", "train.limit_test_batches=0",
        "train.eval_batch_size=4", "teacher.data.train_positions=last", "teacher.eval.max_new_tokens=4",
        f"teacher.eval.method={method}", f"teacher.eval.select_on={select_on}"])
    seen = MonitorsSeen()
    result = train_teacher(cfg, extra_callbacks=[seen])
    assert seen.monitors == [expected]
    assert seen.best_scores[0] is not None          # the metric was logged, so a checkpoint was selected on it
    assert expected in result.metrics


def test_select_on_is_checked_against_method_and_monitor():
    from recdistill.config import compose
    from recdistill.errors import ConfigError
    from recdistill.recipes.teacher_settings import checkpoint_monitor

    assert checkpoint_monitor(compose("teacher", ["teacher.eval.select_on=hr1_x_valid_ratio",
                                                  "teacher.eval.method=both"])) == "val/gen_hr@1"
    with pytest.raises(ConfigError, match="teacher.eval.method=generate or both"):
        checkpoint_monitor(compose("teacher", ["teacher.eval.select_on=hr1_x_valid_ratio"]))
    with pytest.raises(ConfigError, match="train.monitor=val/loss and teacher.eval.select_on"):
        checkpoint_monitor(compose("teacher", ["teacher.eval.select_on=hr1_x_valid_ratio",
                                               "teacher.eval.method=both", "train.monitor=val/loss"]))
    with pytest.raises(ConfigError, match="teacher.eval.select_on='ndcg'.*likelihood_ndcg, hr1_x_valid_ratio"):
        checkpoint_monitor(compose("teacher", ["teacher.eval.select_on=ndcg"]))
