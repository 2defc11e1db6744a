"""The teacher's options "as published" (issue 24): validation candidates drawn without knowing the test item,
LLaRA / iLoRA's prompt strings (whole-string tokenization with the tokenizer's special tokens, a random
template in evaluation, MovieLens titles rewritten), and model selection on HR@1 x ValidRatio."""

from __future__ import annotations

import copy
import dataclasses

import numpy as np
import pytest
from lightning.pytorch.callbacks import Callback

from recdistill.data.prepared import load_prepared
from recdistill.errors import ConfigError
from recdistill.evaluation.candidates import CandidateProtocol, draw_candidate_sets
from recdistill.teacher.data import PromptDataset, eval_samples
from recdistill.teacher.prompt_encoder import PromptEncoder, load_templates
from teacher_fixtures import prompt_settings, tokenizer


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


class TextOnlyRowSeen(Callback):
    """Records, at the end of fit, the row the model shows in text-only slots (None: the pad embedding)."""

    def __init__(self):
        self.row, self.hidden = None, None

    def on_fit_end(self, trainer, module):
        self.row, self.hidden = module.teacher.text_only_row, module.teacher.base_config.hidden_size


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
    from teacher_fixtures import CACHE, make_student, write_student_checkpoint

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


def llama_style(tok):
    """The tokenizer with Llama-2's post-processor: BOS before every text encoded with special tokens."""
    from tokenizers.processors import TemplateProcessing

    llama = copy.deepcopy(tok)
    bos = llama.bos_token
    llama.backend_tokenizer.post_processor = TemplateProcessing(
        single=f"{bos} $A", pair=f"{bos} $A {bos} $B", special_tokens=[(bos, llama.bos_token_id)])
    return llama


def their_string(template: str, titles, history, candidates) -> str:
    """LLaRA / iLoRA's prompt string (their collator), written out here independently of the encoder."""
    text = template.replace("[HistoryHere]", ", ".join(titles[i] + " [HistoryEmb]" for i in history))
    return text.replace("[CansHere]", ", ".join(titles[i] + " [CansEmb]" for i in candidates))


@pytest.mark.parametrize("template", [0, 1, 2])
def test_whole_string_gives_the_ids_of_their_string_with_a_llama_tokenizer(tiny_prepared, template):
    data = load_prepared(tiny_prepared)
    llama = llama_style(tokenizer())
    theirs = copy.deepcopy(llama)                       # their tokenizer: the placeholders as special tokens
    theirs.add_special_tokens({"additional_special_tokens": ["[PH]", "[HistoryEmb]", "[CansEmb]", "[ItemEmb]"]})
    placeholders = set(theirs.convert_tokens_to_ids(["[HistoryEmb]", "[CansEmb]"]))
    templates = load_templates()
    enc = PromptEncoder(llama, data.titles, templates, tokenize="whole_string")
    history, candidates = [3, 1, 4, 15, 9], [2, 6, 5, 35, 8]
    expected = theirs(their_string(templates[template], data.titles, history, candidates))["input_ids"]
    assert expected[0] == llama.bos_token_id                                    # BOS, as Llama-2's tokenizer adds
    ours = enc.encode(history, candidates, template, target=7)
    prompt = ours.input_ids[:ours.answer_start]
    assert prompt == [enc.slot_id if t in placeholders else t for t in expected]   # the same ids, slots aside
    assert [s for s in ours.item_slots if s] == history + candidates                # slots in text order
    assert ours.input_ids[ours.answer_start:] == enc.answer_ids(7)
    pieces = PromptEncoder(llama, data.titles, templates).encode(history, candidates, template, target=7)
    assert pieces.input_ids[0] != llama.bos_token_id                            # ours: no BOS (the default)


def test_published_answer_is_their_tokenized_pair(tiny_prepared):
    """teacher.prompt.answer_form=published: prompt and answer are the ids of their (prompt, title + "\n") pair
    with a Llama tokenizer (a second BOS before the title, a newline after it, no EOS), and candidates are
    scored as that continuation."""
    data = load_prepared(tiny_prepared)
    llama = llama_style(tokenizer())
    theirs = copy.deepcopy(llama)
    theirs.add_special_tokens({"additional_special_tokens": ["[PH]", "[HistoryEmb]", "[CansEmb]", "[ItemEmb]"]})
    placeholders = set(theirs.convert_tokens_to_ids(["[HistoryEmb]", "[CansEmb]"]))
    templates = load_templates()
    enc = PromptEncoder(llama, data.titles, templates, tokenize="whole_string", answer_form="published")
    history, candidates = [3, 1, 4], [2, 6, 7, 5]
    ours = enc.encode(history, candidates, 1, target=7)
    pair = theirs(their_string(templates[1], data.titles, history, candidates), data.titles[7] + "\n")["input_ids"]
    assert ours.input_ids == [enc.slot_id if t in placeholders else t for t in pair]
    answer = ours.input_ids[ours.answer_start:]
    assert answer[0] == llama.bos_token_id and llama.eos_token_id not in answer
    assert answer[1:] == llama(data.titles[7] + "\n", add_special_tokens=False)["input_ids"]
    assert enc.answers[7] == answer
    default = PromptEncoder(llama, data.titles, templates, tokenize="whole_string")
    assert default.answers[7][-1] == llama.eos_token_id and default.answers[7][0] != llama.bos_token_id
    with pytest.raises(ConfigError, match="answer_form=published follows their whole prompt string"):
        PromptEncoder(llama, data.titles, templates, answer_form="published")


def test_scoring_sums_the_published_answer(tiny_prepared):
    """Scoring a candidate under answer_form=published is log P(<s> title\n | prompt): the encoder's answers,
    checked against the whole sequence run once."""
    import torch

    from recdistill.teacher.data import PromptCollator
    from recdistill.teacher.scoring import score_candidates, score_full
    from teacher_fixtures import make_student
    from test_teacher_ilora_options import build

    data = load_prepared(tiny_prepared)
    enc = PromptEncoder(llama_style(tokenizer()), data.titles, load_templates(), tokenize="whole_string",
                        answer_form="published")
    ds = PromptDataset(eval_samples(data, "val"), enc, data.num_items, prompt_settings(num_candidates=5), "val",
                       train=False)
    batch = PromptCollator(enc.slot_id, 10, with_prompts=True)([ds[i] for i in range(3)])
    teacher = build("linear", student=make_student()).eval()
    fast = score_candidates(teacher, batch, enc.answers, enc.slot_id, chunk_size=4)
    assert torch.allclose(fast, score_full(teacher, batch, enc.answers, enc.slot_id), atol=1e-4)
    with_eos = score_candidates(teacher, batch, [t + [enc.eos_id] for t in enc.title_ids], enc.slot_id, chunk_size=4)
    assert not torch.allclose(fast, with_eos)


def test_a_batch_template_is_one_template_per_training_batch(tiny_prepared):
    """teacher.prompt.template_unit=batch: DataLoader batches hold one template each (their collate function
    draws one per batch), seeded; sample (ours) mixes templates inside a batch."""
    from torch.utils.data import DataLoader

    from recdistill.teacher.data import train_samples

    data = load_prepared(tiny_prepared)
    enc = PromptEncoder(tokenizer(), data.titles, load_templates())

    def templates_seen(unit):
        ds = PromptDataset(train_samples(data, "all", 1), enc, data.num_items, prompt_settings(template_unit=unit),
                           "train", train=True)
        loader = DataLoader(ds, batch_size=6, shuffle=False, collate_fn=lambda rows: rows)
        out, start = [], 0
        for rows in loader:   # which template each row was built with, found by building it with each
            out.append([next(t for t in range(enc.num_templates) if ds._prompt(start + k, t)["input_ids"] == r["input_ids"])
                        for k, r in enumerate(rows)])
            start += len(rows)
        return out

    batches = templates_seen("batch")
    assert all(len(set(b)) == 1 for b in batches) and len({b[0] for b in batches}) > 1
    assert batches == templates_seen("batch")                          # seeded
    assert any(len(set(b)) > 1 for b in templates_seen("sample"))
    with pytest.raises(ConfigError, match="teacher.prompt.template_unit"):
        PromptDataset(train_samples(data, "all", 1), enc, data.num_items, prompt_settings(template_unit="step"),
                      "train", train=True)


def test_random_evaluation_templates_are_drawn_per_prompt_and_seeded(tiny_prepared):
    from recdistill.evaluation.candidates import CandidateProtocol
    from recdistill.teacher.candidate_protocol import _rows

    data = load_prepared(tiny_prepared)
    enc = PromptEncoder(tokenizer(), data.titles, load_templates())
    settings = prompt_settings(eval_template="random")
    val = PromptDataset(eval_samples(data, "val"), enc, data.num_items, settings, "val", train=False)
    templates = [val.template(i) for i in range(len(val))]
    assert len(set(templates)) > 1
    again = PromptDataset(eval_samples(data, "val"), enc, data.num_items, settings, "val", train=False)
    assert templates == [again.template(i) for i in range(len(again))]
    fixed = PromptDataset(eval_samples(data, "val"), enc, data.num_items, prompt_settings(), "val", train=False)
    assert {fixed.template(i) for i in range(len(fixed))} == {0}
    # LLaRA's protocol: the template's fixed text differs between rows
    sets = draw_candidate_sets(data, "val", CandidateProtocol(limit_users=8), draw=0)
    firsts = {tuple(row["input_ids"][:5]) for row in _rows(sets, enc, "random", 10, template_seed=0)}
    assert len(firsts) > 1 and len({tuple(r["input_ids"][:5]) for r in _rows(sets, enc, 0, 10)}) == 1


@pytest.mark.parametrize("title, published", [
    ("Matrix, The", "The Matrix"),
    ("Affair to Remember, An", "An Affair to Remember"),
    ("Clockwork Orange, A", "A Clockwork Orange"),
    ("City of Lost Children, The (Cite des enfants perdus, La)", "The City of Lost Children (Cite des enfants perdus, La)"),
    ("Toy Story", "Toy Story"),
    ("Love, Actually", "Love, Actually"),
])
def test_titles_rewritten_as_published(title, published):
    from recdistill.teacher.prompt_encoder import published_title

    assert published_title(title) == published


def test_rewritten_titles_reach_prompts_and_answers(tiny_prepared):
    from recdistill.teacher.build import build_encoder

    data = load_prepared(tiny_prepared)
    items = data.items.copy()
    items.loc[items.index[0], "title"] = "Matrix, The"
    data = dataclasses.replace(data, items=items)
    enc = build_encoder(tokenizer(), data, None, rewrite_titles=True)
    assert enc.titles[1] == "The Matrix" and data.titles[1] == "Matrix, The"
    assert enc.answer_ids(1)[:-1] == tokenizer()(" The Matrix", add_special_tokens=False)["input_ids"]
    assert build_encoder(tokenizer(), data, None).titles[1] == "Matrix, The"


@pytest.mark.parametrize("override, message", [
    ("teacher.prompt.tokenize=words", "teacher.prompt.tokenize='words' is not valid; choose one of: pieces, whole_string"),
    ("teacher.prompt.eval_template=any", "teacher.prompt.eval_template='any' is not valid"),
    ("teacher.prompt.rewrite_titles=maybe", "teacher.prompt.rewrite_titles='maybe' is not valid"),
    ("teacher.prompt.answer_form=published", "answer_form=published follows their whole prompt string"),
    ("teacher.prompt.answer_form=newline", "teacher.prompt.answer_form='newline' is not valid"),
    ("teacher.prompt.template_unit=step", "teacher.prompt.template_unit='step' is not valid"),
    ("teacher.curriculum_counter=worker", "teacher.curriculum_counter='worker' is not valid"),
    ("teacher.curriculum_placeholder=ph", "teacher.curriculum_placeholder='ph' is not valid"),
])
def test_prompt_options_are_checked(override, message):
    from recdistill.config import compose
    from recdistill.errors import ConfigError
    from recdistill.recipes.teacher_settings import validate_teacher_config

    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        validate_teacher_config(compose("teacher", [override]))
    with pytest.raises(ConfigError, match="tokenize=whole_string cannot cut prompts"):
        validate_teacher_config(compose("teacher", ["teacher.prompt.tokenize=whole_string",
                                                    "teacher.prompt.max_tokens=200"]))


def test_a_teacher_trains_and_evaluates_on_their_prompts(tmp_path):
    from conftest import make_tiny_prepared
    from recdistill.config import compose
    from recdistill.recipes.teacher import train_teacher
    from teacher_fixtures import CACHE, make_student, write_student_checkpoint

    prepared = make_tiny_prepared(tmp_path / "data" / "tiny")
    student = write_student_checkpoint(tmp_path / "student.ckpt", make_student(), load_prepared(prepared))
    cfg = compose("teacher", [
        f"prepared={prepared}", f"paths.runs_dir={tmp_path / 'runs'}", f"paths.cache_dir={CACHE}",
        "run.progress_bar=false", "llm=tiny-llama", f"teacher.student_checkpoint={student}", "train.batch_size=4",
        "train.limit_train_batches=1", "train.limit_val_batches=1", "train.limit_test_batches=1",
        "train.eval_batch_size=4", "teacher.data.train_positions=last", "teacher.data.length_bucket_batches=2",
        "teacher.prompt.tokenize=whole_string", "teacher.prompt.eval_template=random",
        "teacher.prompt.rewrite_titles=true", "teacher.prompt.answer_form=published",
        "teacher.prompt.template_unit=batch", "teacher.curriculum_counter=epoch",
        "teacher.curriculum_placeholder=random_row"])
    seen = TextOnlyRowSeen()
    result = train_teacher(cfg, extra_callbacks=[seen])
    assert seen.row is not None and seen.row.shape == (seen.hidden,)     # the option reached the trained model
    assert 0.0 <= result.metrics["test/cand20_ndcg@10"] <= 1.0
    from recdistill.teacher.checkpoint import read_adapter_meta

    saved = read_adapter_meta(result.artefacts["adapter"])["teacher"]["prompt"]
    assert (saved["answer_form"], saved["template_unit"]) == ("published", "batch")   # export reads them back
