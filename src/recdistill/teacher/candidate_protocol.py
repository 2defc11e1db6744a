"""The LLM teacher on candidate sets: LLaRA's greedy generation (parsed by :mod:`.llara`) and, when
asked, the likelihood ranking of the same candidates (so HR@1 / NDCG@10 sit beside the student's)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from recdistill.evaluation.candidates import SPLIT_IDS, CandidateSets
from recdistill.evaluation.llara import generation_metrics
from recdistill.teacher.data import PromptCollator, evaluation_template
from recdistill.evaluation.candidate_metrics import candidate_metrics, target_ranks
from recdistill.teacher.evaluation import generate_answers
from recdistill.teacher.scoring import score


@dataclass
class CandidateProtocolSettings:
    """The teacher's side of the candidate protocol, read from the config by ``recipes/protocols.py``
    (``teacher.prompt``, ``teacher.eval``, ``eval.candidates``, ``train.eval_batch_size``)."""

    template: int | str             # teacher.prompt.eval_template: a template (0-based) or "random"
    template_seed: int              # teacher.prompt.seed: seeds the random template per (split, draw, user)
    batch_size: int                 # prompts per forward
    generate: bool                  # greedy generation, parsed the LLaRA way (ValidRatio, HR@1)
    likelihood: bool                # also rank the candidates by log P(title | prompt)
    max_new_tokens: int             # eval.candidates.max_new_tokens (LLaRA / iLoRA: max_gen_length 64)
    candidate_batch_size: int       # teacher.eval.candidate_batch_size
    score_norm: str                 # teacher.eval.score_norm
    kv_cache: bool                  # teacher.eval.kv_cache
    min_new_tokens: int             # teacher.eval.min_new_tokens (LLaRA / iLoRA's generate: 1)


def _rows(sets: CandidateSets, encoder, template: int | str, student_len: int, template_seed: int = 0) -> list[dict]:
    rows = []
    split = SPLIT_IDS[sets.split]
    for i in range(len(sets.users)):
        target = int(sets.targets[i])
        shown_template = evaluation_template(template, encoder.num_templates, template_seed, split, sets.draw,
                                             int(sets.users[i]))
        enc = encoder.encode(sets.shown(i), sets.candidates[i], shown_template, target=target)
        rows.append({"input_ids": enc.input_ids, "item_slots": enc.item_slots, "answer_start": enc.answer_start,
                     "student_seq": sets.histories[i][-student_len:], "candidates": sets.candidates[i],
                     "target": target, "target_index": int(sets.target_index[i]), "user": int(sets.users[i]),
                     "position": -1})
    return rows


def _length_sorted_batches(teacher, encoder, sets: CandidateSets, s: CandidateProtocolSettings):
    """``(row indices, collated batch)`` with prompts of similar length together (less padding to run
    through the LLM); callers put the results back in the sets' order."""
    student_len = int(teacher.student.max_len)
    collate = PromptCollator(encoder.slot_id, student_len, with_prompts=True)
    rows = _rows(sets, encoder, s.template, student_len, s.template_seed)
    order = np.argsort([len(r["input_ids"]) for r in rows], kind="stable")
    for start in range(0, len(rows), s.batch_size):
        index = order[start:start + s.batch_size]
        yield index, collate([rows[int(i)] for i in index])


@torch.no_grad()
def teacher_scores(teacher, encoder, sets: CandidateSets, s: CandidateProtocolSettings) -> torch.Tensor:
    """``[N, C]`` likelihood scores (log P(title + EOS | prompt), ``s.score_norm``) of every listed candidate,
    in the sets' order."""
    teacher.eval()
    out = torch.empty(sets.candidates.shape, dtype=torch.float32)
    for index, batch in _length_sorted_batches(teacher, encoder, sets, s):
        out[torch.from_numpy(index)] = score(teacher, batch, encoder.answers, encoder.slot_id,
                                             s.candidate_batch_size, s.score_norm, kv_cache=s.kv_cache).float().cpu()
    return out


@torch.no_grad()
def teacher_answers(teacher, encoder, sets: CandidateSets, s: CandidateProtocolSettings) -> list[str]:
    """Greedy generated answers, in the sets' order."""
    teacher.eval()
    texts: list[str] = [""] * len(sets.users)
    for index, batch in _length_sorted_batches(teacher, encoder, sets, s):
        for i, text in zip(index, generate_answers(teacher, batch, encoder.tokenizer, s.max_new_tokens, s.min_new_tokens)):
            texts[int(i)] = text
    return texts


def teacher_metrics(teacher, encoder, titles: list[str], sets: CandidateSets, s: CandidateProtocolSettings) -> dict:
    """Generation metrics (``valid_ratio``, ``hr@1_valid``, ``hr@1_all``) and likelihood ones
    (``cand<C>_hr@1`` ...) of the teacher on these sets."""
    out: dict = {}
    if s.likelihood:
        scores = teacher_scores(teacher, encoder, sets, s)
        out.update(candidate_metrics(target_ranks(scores, torch.from_numpy(sets.target_index)),
                                     sets.candidates.shape[1]))
    if s.generate:
        texts = teacher_answers(teacher, encoder, sets, s)
        cands = [[titles[int(c)] for c in row] for row in sets.candidates.tolist()]
        out.update(generation_metrics(texts, cands, [titles[int(t)] for t in sets.targets]))
        out["_texts"] = texts
    return out
