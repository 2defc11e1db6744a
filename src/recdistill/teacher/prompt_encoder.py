"""Prompts for the LLM teacher, iLoRA / LLaRA style, tokenized once ahead of training.

A template is one line of text with two markers: ``[HistoryHere]`` becomes the user's last N items as
``title [HistoryEmb], title [HistoryEmb], ...`` and ``[CansHere]`` the candidates as
``title [CansEmb], ...``. The answer is the target title followed by the end-of-sequence token.

Placeholders are not added to the tokenizer's vocabulary (that would resize, and so change, the base
model's embedding matrix): each one is a single slot holding the pad token id, and ``item_slots`` marks
it with the item id, so the model swaps in the projected student embedding through ``inputs_embeds``.

Everything textual is tokenized here, once: each title, each piece of each template and the separators.
Building a prompt afterwards only concatenates id lists, so DataLoader workers never tokenize.
A prompt longer than ``max_tokens`` loses its oldest history items first; the caller counts the cuts.

``tokenize="whole_string"`` is LLaRA / iLoRA's way instead: the prompt is written out as their string
("title [HistoryEmb], title [HistoryEmb], ...") and tokenized whole with the tokenizer's special tokens
(BOS for Llama-2), the placeholders being special tokens of a private copy of the tokenizer; their ids
become slots as above, so the model's vocabulary is still untouched. That tokenizes every prompt when it
is built (in the DataLoader) and cannot cut prompts ahead.

``answer_form="published"`` (with ``whole_string``) is their training answer too: the pair (prompt, title +
"\n") encoded by the tokenizer as a pair, so the answer is the pair's second segment (for Llama-2
``<s> title\n``: a second BOS and a newline, no EOS); candidates are then scored as that continuation.
Ours (``eos``) is the title and EOS: generation never sees a second BOS, and stops at EOS.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from recdistill.errors import ConfigError, DataError

HISTORY_MARK = "[HistoryHere]"
CANDIDATES_MARK = "[CansHere]"
HISTORY_EMB = "[HistoryEmb]"
CANDIDATE_EMB = "[CansEmb]"
DEFAULT_TEMPLATES = "movie.txt"
HISTORY_ONLY_TEMPLATES = "movie_history.txt"   # for candidates="none": no [CansHere]
# How the prompt lists the candidates: titles = "title [CansEmb], ..." (iLoRA); tokens = "[CansEmb], ..." only
# (the projected item embeddings, no title text); none = not listed (history-only prompts: candidates are
# scored as continuations of the prompt anyway).
CANDIDATE_LISTINGS = ("titles", "tokens", "none")
# How a prompt becomes token ids: pieces = title, template pieces and separators tokenized apart, no special
# tokens (ours: tokenized once, cuttable); whole_string = LLaRA / iLoRA's string tokenized whole, BOS included.
TOKENIZATIONS = ("pieces", "whole_string")
# What follows the prompt in training and in scoring: eos = title + EOS (ours); published = LLaRA / iLoRA's
# (prompt, title + "\n") pair's second segment as the tokenizer writes it.
ANSWER_FORMS = ("eos", "published")
PUBLISHED_TERMINATOR = "\n"
# The placeholders LLaRA / iLoRA add to their tokenizer as special tokens; all four, so the text between them
# splits exactly as in their tokenizer.
PUBLISHED_SPECIAL_TOKENS = ("[PH]", HISTORY_EMB, CANDIDATE_EMB, "[ItemEmb]")
_TRAILING_ARTICLE = re.compile(r"^(?P<head>.+?), (?P<article>The|An|A)(?P<tail> \(.*\))?$")


def check_answer_form(answer_form: str, tokenize: str) -> None:
    """``teacher.prompt.answer_form`` is known and, when published, comes with the whole-string prompt."""
    if answer_form not in ANSWER_FORMS:
        raise ConfigError(f"teacher.prompt.answer_form={answer_form!r} is not valid; choose one of: "
                          f"{', '.join(ANSWER_FORMS)}")
    if answer_form == "published" and tokenize != "whole_string":
        raise ConfigError("teacher.prompt.answer_form=published follows their whole prompt string; set "
                          "teacher.prompt.tokenize=whole_string too, or teacher.prompt.answer_form=eos")


def published_title(title: str) -> str:
    """MovieLens' "Matrix, The" as LLaRA / iLoRA write it: "The Matrix" (also before an alternative title in
    parentheses: "City of Lost Children, The (Cite des ...)" -> "The City of Lost Children (Cite des ...)").
    Their code replaces the first of ", The" / ", A" / ", An" found anywhere in the title, which also mangles
    titles such as "Affair to Remember, An" ("A Affair to Remembern"); only a trailing article moves here."""
    match = _TRAILING_ARTICLE.match(title)
    if match is None:
        return title
    return f"{match['article']} {match['head']}{match['tail'] or ''}"


def load_templates(path: str | Path | None = None, candidates: str = "titles") -> list[str]:
    """The templates, one per non-empty line: the package's three iLoRA movie templates by default (their
    history-only versions for ``candidates="none"``), or a user's file. Each must hold ``[HistoryHere]``
    exactly once, and ``[CansHere]`` exactly once unless ``candidates="none"`` (then never)."""
    if candidates not in CANDIDATE_LISTINGS:
        raise ConfigError(f"teacher.prompt.candidates={candidates!r} is not valid; choose one of: "
                          f"{', '.join(CANDIDATE_LISTINGS)}")
    if path is None:
        name = HISTORY_ONLY_TEMPLATES if candidates == "none" else DEFAULT_TEMPLATES
        text = (resources.files("recdistill.teacher") / "prompts" / name).read_text(encoding="utf-8")
        where = f"recdistill/teacher/prompts/{name}"
    else:
        file = Path(path).expanduser()
        if not file.is_file():
            raise ConfigError(f"teacher.prompt.file={str(path)!r} does not exist; give a text file with one "
                              f"template per line, each holding {HISTORY_MARK} and {CANDIDATES_MARK}")
        text, where = file.read_text(encoding="utf-8"), str(file)
    templates = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    if not templates:
        raise ConfigError(f"{where} holds no template (one per line; lines starting with # are comments)")
    for number, template in enumerate(templates, 1):
        for mark in (HISTORY_MARK, CANDIDATES_MARK):
            if mark == CANDIDATES_MARK and candidates == "none":
                if mark in template:
                    raise ConfigError(f"{where}, template {number}: teacher.prompt.candidates=none lists no "
                                      f"candidates, so the template must not hold {mark}: {template[:80]!r}")
                continue
            if template.count(mark) != 1:
                raise ConfigError(f"{where}, template {number}: {mark} must appear exactly once "
                                  f"(found {template.count(mark)} times): {template[:80]!r}")
    return templates


@dataclass
class EncodedPrompt:
    input_ids: list[int]     # the prompt (and the answer, when a target was given)
    item_slots: list[int]    # item id at each placeholder position, 0 elsewhere
    answer_start: int        # index of the first answer token (== len(prompt) without a target)
    history_used: int        # history items shown (after any cut)
    history_cut: int         # history items removed to fit max_tokens


@dataclass
class _Template:
    before: list[list[int]]  # token ids of the text pieces: [lead, between, tail]
    order: tuple[str, str]   # which block comes first


class PromptEncoder:
    """Turns (history, candidates, target) item ids into token ids with placeholder slots.

    Args:
        tokenizer: a Hugging Face tokenizer (its pad token marks placeholder slots).
        titles: ``titles[i]`` is item i's title (index 0 unused).
        templates: from :func:`load_templates` (with the same ``candidates``).
        candidates: how candidates are listed, one of :data:`CANDIDATE_LISTINGS`.
    """

    def __init__(self, tokenizer, titles: list[str], templates: list[str], candidates: str = "titles",
                 tokenize: str = "pieces", answer_form: str = "eos"):
        if candidates not in CANDIDATE_LISTINGS:
            raise ConfigError(f"teacher.prompt.candidates={candidates!r} is not valid; choose one of: "
                              f"{', '.join(CANDIDATE_LISTINGS)}")
        if tokenize not in TOKENIZATIONS:
            raise ConfigError(f"teacher.prompt.tokenize={tokenize!r} is not valid; choose one of: "
                              f"{', '.join(TOKENIZATIONS)}")
        check_answer_form(answer_form, tokenize)
        self.candidates, self.tokenize, self.answer_form = candidates, tokenize, answer_form
        self.titles = list(titles)
        if tokenizer.pad_token_id is None:
            raise ConfigError("the tokenizer has no pad token; set tokenizer.pad_token = tokenizer.eos_token")
        self.tokenizer = tokenizer
        self.slot_id = int(tokenizer.pad_token_id)
        self.eos_id = int(tokenizer.eos_token_id)
        self.templates_text = list(templates)

        def ids(text: str) -> list[int]:
            return list(tokenizer(text, add_special_tokens=False)["input_ids"])

        # Titles with a leading space, as they follow ":" or "," in running text. One batched call.
        encoded = tokenizer([" " + t for t in titles[1:]], add_special_tokens=False)["input_ids"]
        self.title_ids: list[list[int]] = [[]] + [list(x) for x in encoded]
        if any(len(x) == 0 for x in self.title_ids[1:]):
            raise DataError("some items have an empty title; the teacher needs a title for every item")
        self.separator = ids(",")
        self.templates = [self._split(t) for t in templates]
        self.title_lengths = np.array([len(x) for x in self.title_ids])
        self._marked = self._with_placeholder_tokens(tokenizer) if tokenize == "whole_string" else None
        # Each item's answer: what training learns after the prompt and what scoring sums log-probabilities of.
        self.answers: list[list[int]] = ([[]] + [x + [self.eos_id] for x in self.title_ids[1:]] if answer_form == "eos"
                                         else self._published_answers(tokenizer, titles))

    @staticmethod
    def _published_answers(tokenizer, titles: list[str]) -> list[list[int]]:
        """The second segment of the pair (any text, title + "\n") as the tokenizer encodes pairs, with its
        special tokens: LLaRA / iLoRA's training answer. Read off a pair with a one-word first segment."""
        first = list(tokenizer("x")["input_ids"])
        pairs = tokenizer(["x"] * (len(titles) - 1), [t + PUBLISHED_TERMINATOR for t in titles[1:]])["input_ids"]
        answers = [[]]
        for ids in pairs:
            ids = list(ids)
            if ids[:len(first)] != first:
                raise ConfigError("teacher.prompt.answer_form=published: this tokenizer encodes a pair's first "
                                  "segment differently from the segment alone, so the answer cannot be read off "
                                  "the pair; use teacher.prompt.answer_form=eos")
            answers.append(ids[len(first):])
        return answers

    @staticmethod
    def _with_placeholder_tokens(tokenizer):
        """A copy of the tokenizer that knows the placeholders as special tokens, as LLaRA / iLoRA's does. Only
        this copy grows; the model's tokenizer and embeddings stay as they are."""
        marked = copy.deepcopy(tokenizer)
        marked.add_special_tokens({"additional_special_tokens": list(PUBLISHED_SPECIAL_TOKENS)})
        return marked

    def _split(self, template: str) -> _Template:
        parts = re.split(r"(\[HistoryHere\]|\[CansHere\])", template)
        if len(parts) == 3:  # history-only: an empty candidate block after the tail
            parts += [CANDIDATES_MARK, ""]
        lead, first, middle, second, tail = parts
        # Trailing spaces before a block are dropped: each title carries its own leading space.
        return _Template([ids_ for ids_ in (self._ids(lead.rstrip()), self._ids(middle.rstrip()), self._ids(tail))],
                         ("history" if first == HISTORY_MARK else "candidates",
                          "history" if second == HISTORY_MARK else "candidates"))

    def _ids(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []

    @property
    def num_templates(self) -> int:
        return len(self.templates)

    def _block(self, items, with_titles: bool = True) -> tuple[list[int], list[int]]:
        ids, slots = [], []
        for i, item in enumerate(items):
            if i:
                ids += self.separator
                slots += [0] * len(self.separator)
            title = self.title_ids[int(item)] if with_titles else []
            ids += title + [self.slot_id]
            slots += [0] * len(title) + [int(item)]
        return ids, slots

    def _candidate_block(self, items) -> tuple[list[int], list[int]]:
        if self.candidates == "none":
            return [], []
        return self._block(items, with_titles=self.candidates == "titles")

    def block_length(self, items) -> int:
        """Tokens of a history block (``title [HistoryEmb]`` per item)."""
        items = list(items)
        if not items:
            return 0
        return int(self.title_lengths[items].sum()) + len(items) + len(self.separator) * (len(items) - 1)

    def candidate_block_length(self, items) -> int:
        """Tokens of the candidate block as this encoder lists candidates."""
        items = list(items)
        if self.candidates == "none" or not items:
            return 0
        titles = int(self.title_lengths[items].sum()) if self.candidates == "titles" else 0
        return titles + len(items) + len(self.separator) * (len(items) - 1)

    def longest_candidate_block(self, count: int) -> int:
        """The most tokens any ``count`` candidates can take (for planning cuts ahead)."""
        longest = np.argsort(self.title_lengths[1:])[::-1][:count] + 1
        return self.candidate_block_length(longest)

    def fixed_length(self, template: int) -> int:
        return sum(len(p) for p in self.templates[template].before)

    def answer_ids(self, target: int) -> list[int]:
        return list(self.answers[int(target)])

    def fit_history(self, history, budget: int) -> int:
        """How many of the newest history items fit in ``budget`` tokens."""
        n = len(history)
        while n > 0 and self.block_length(history[len(history) - n:]) > budget:
            n -= 1
        return n

    def encode(self, history, candidates, template: int = 0, target: int | None = None,
               max_tokens: int | None = None, history_keep: int | None = None) -> EncodedPrompt:
        """Token ids for one prompt. ``history`` is the items to show (already the last N), oldest first.

        ``history_keep`` forces how many of the newest items to keep (the caller decided the cut ahead);
        otherwise, with ``max_tokens``, the oldest history items are dropped until the prompt fits.
        """
        history = [int(x) for x in history]
        if self.tokenize == "whole_string":
            return self._encode_whole_string(history, candidates, template, target, max_tokens, history_keep)
        tpl = self.templates[template]
        cand_ids, cand_slots = self._candidate_block(candidates)
        answer = self.answer_ids(target) if target is not None else []
        keep = len(history) if history_keep is None else min(int(history_keep), len(history))
        if max_tokens is not None and history_keep is None:
            budget = int(max_tokens) - self.fixed_length(template) - len(cand_ids) - len(answer)
            keep = self.fit_history(history, budget)
            if budget < 0:
                raise DataError(
                    f"a prompt needs {int(max_tokens) - budget} tokens without any history, more than "
                    f"teacher.prompt.max_tokens={max_tokens}; raise it or use fewer candidates")
        hist_ids, hist_slots = self._block(history[len(history) - keep:])
        blocks = {"history": (hist_ids, hist_slots), "candidates": (cand_ids, cand_slots)}
        lead, middle, tail = tpl.before
        ids = lead + blocks[tpl.order[0]][0] + middle + blocks[tpl.order[1]][0] + tail
        slots = ([0] * len(lead) + blocks[tpl.order[0]][1] + [0] * len(middle) + blocks[tpl.order[1]][1]
                 + [0] * len(tail))
        answer_start = len(ids)
        return EncodedPrompt(ids + answer, slots + [0] * len(answer), answer_start, keep, len(history) - keep)

    def published_string(self, history, candidates, template: int) -> str:
        """The prompt as LLaRA / iLoRA write it: each block joined by ", " as "title [HistoryEmb]"."""
        text = self.templates_text[template]
        shown = ", ".join(f"{self.titles[int(i)]} {HISTORY_EMB}" for i in history)
        text = text.replace(HISTORY_MARK, shown)
        if self.candidates == "titles":
            text = text.replace(CANDIDATES_MARK, ", ".join(f"{self.titles[int(i)]} {CANDIDATE_EMB}" for i in candidates))
        elif self.candidates == "tokens":
            text = text.replace(CANDIDATES_MARK, ", ".join(CANDIDATE_EMB for _ in candidates))
        return text

    def _encode_whole_string(self, history: list[int], candidates, template: int, target, max_tokens,
                             history_keep) -> EncodedPrompt:
        if max_tokens is not None or (history_keep is not None and int(history_keep) < len(history)):
            raise ConfigError("teacher.prompt.tokenize=whole_string cannot cut prompts (LLaRA / iLoRA never do); "
                              "set teacher.prompt.max_tokens=null or teacher.prompt.tokenize=pieces")
        ids = list(self._marked(self.published_string(history, candidates, template))["input_ids"])
        ids, slots = self._placeholders_to_slots(ids, self._items_in_text_order(history, candidates, template))
        answer = self.answer_ids(target) if target is not None else []
        return EncodedPrompt(ids + answer, slots + [0] * len(answer), len(ids), len(history), 0)

    def _items_in_text_order(self, history: list[int], candidates, template: int) -> list[int]:
        listed = [] if self.candidates == "none" else [int(i) for i in candidates]
        text = self.templates_text[template]
        history_first = CANDIDATES_MARK not in text or text.index(HISTORY_MARK) < text.index(CANDIDATES_MARK)
        return history + listed if history_first else listed + history

    def _placeholders_to_slots(self, ids: list[int], items: list[int]) -> tuple[list[int], list[int]]:
        """Each placeholder token becomes a slot (the pad id) marked with its item, in text order."""
        placeholder_ids = set(self._marked.convert_tokens_to_ids([HISTORY_EMB, CANDIDATE_EMB]))
        positions = [p for p, token in enumerate(ids) if token in placeholder_ids]
        if len(positions) != len(items):
            raise DataError(f"a prompt string holds {len(positions)} placeholders for {len(items)} items; an item "
                            f"title or a template contains {HISTORY_EMB} or {CANDIDATE_EMB}")
        slots = [0] * len(ids)
        for position, item in zip(positions, items):
            ids[position], slots[position] = self.slot_id, item
        return ids, slots
