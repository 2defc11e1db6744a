"""The LLM teacher as an export ranker (the protocol of ``recdistill.teacher_outputs.rankers.Ranker``).

For each row the prompt shows the history and lists the first ``listed`` items of the candidate set
(the student's best first for ``student_top_m``; for the whole catalogue, ``listed`` unseen items drawn
with a seed derived from the history), so prompts look like the ones the teacher was trained on. Every
candidate of the set is then scored by the likelihood of its title under that one prompt, reusing the
prompt's KV cache (:func:`recdistill.teacher.scoring.score_candidates`).

``teacher.export.ranking=grounded`` is BIGRec's grounding (the teacher DLLM2Rec distils from): the teacher
generates an answer greedily, the answer is embedded like an item title, and every candidate (with
``export.candidates=all``: the whole catalogue, so the ranking can name items the student never ranks
highly) is scored by the negative L2 distance between its title embedding and the answer's. One
generation per row instead of one title continuation per candidate. ``scores`` are then ``-distance``
(DLLM2Rec's confidence ``exp(-distance)`` is their softmax up to normalisation).

Item embeddings (``teacher.export.embedding_pooling``): the mean of the LLM's last hidden states over the
item's title tokens (``mean``, ours) or the last hidden state at the title's last token (``last``: what
DLLM2Rec reads from BIGRec's ``predict_embeddings``); the title alone, no prompt. In ``ilora`` mode there
is no user to gate by, so the experts are mixed uniformly.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from recdistill.engine.progress import progress as progress_report
from recdistill.errors import ConfigError
from recdistill.data.sequences import left_pad_batch
from recdistill.teacher.data import PromptSettings, evaluation_template, pad_left
from recdistill.teacher.model import ILoRATeacher
from recdistill.teacher.prompt_encoder import PromptEncoder
from recdistill.teacher.scoring import score


POOLINGS = ("mean", "last")
RANKINGS = ("likelihood", "grounded")


def pool_title_states(states: torch.Tensor, mask: torch.Tensor, how: str) -> torch.Tensor:
    """``states[B, T, H]`` of right-padded titles (``mask[B, T]``, 1 = token) -> ``[B, H]``: the mean over
    the title's tokens, or the state at its last token."""
    if how == "last":
        last = mask.long().sum(1) - 1
        return states[torch.arange(states.shape[0], device=states.device), last]
    m = mask.unsqueeze(-1).float()
    return (states * m).sum(1) / m.sum(1)


def _history_seed(history: np.ndarray) -> int:
    return int.from_bytes(hashlib.sha256(np.asarray(history, dtype=np.int64).tobytes()).digest()[:4], "little")


class LLMRanker:
    def __init__(self, teacher: ILoRATeacher, encoder: PromptEncoder, settings: PromptSettings, num_items: int,
                 identity: dict, listed: int = 20, chunk_size: int = 64, norm: str = "sum", kv_cache: bool = True,
                 embeddings: bool = True, embedding_batch_size: int = 64, seed: int = 0, progress: bool = True,
                 embedding_pooling: str = "mean", ranking: str = "likelihood", max_new_tokens: int = 32):
        if ranking not in RANKINGS:
            raise ConfigError(f"teacher.export.ranking={ranking!r} is not valid; choose one of: {', '.join(RANKINGS)}")
        self.ranking, self.max_new_tokens = ranking, int(max_new_tokens)
        self._title_table: torch.Tensor | None = None
        if embedding_pooling not in POOLINGS:
            raise ConfigError(f"teacher.export.embedding_pooling={embedding_pooling!r} is not valid; choose one of: "
                              f"{', '.join(POOLINGS)}")
        self.embedding_pooling = embedding_pooling
        self.teacher, self.encoder, self.s = teacher, encoder, settings
        self.num_items = int(num_items)
        self._identity = identity
        self.listed, self.chunk_size, self.norm = int(listed), int(chunk_size), norm
        self.kv_cache = bool(kv_cache)
        self.embeddings, self.embedding_batch_size = embeddings, int(embedding_batch_size)
        self.seed, self.progress = int(seed), progress
        self.device = teacher.embedding_layer.weight.device

    def identity(self) -> dict:
        return dict(self._identity)

    def _candidate_set(self, history: np.ndarray, row: np.ndarray | None) -> np.ndarray:
        if row is not None:
            return np.asarray(row, dtype=np.int64)[np.asarray(row) > 0]
        unseen = np.setdiff1d(np.arange(1, self.num_items + 1), history)
        listed = np.random.default_rng([self.seed, _history_seed(history)]).permutation(unseen)[: self.listed]
        return np.concatenate([listed, np.setdiff1d(unseen, listed)])  # listed first, as for the other modes

    def _batch(self, histories, sets) -> dict:
        prompts, slots = [], []
        for hist, cands in zip(histories, sets):
            template = evaluation_template(self.s.eval_template, self.encoder.num_templates, self.s.seed,
                                           _history_seed(hist))
            enc = self.encoder.encode(np.asarray(hist)[-self.s.history_items:], cands[: self.listed],
                                      template, max_tokens=self.s.max_tokens)
            prompts.append(enc.input_ids); slots.append(enc.item_slots)
        width = max(len(p) for p in prompts)
        width_c = max(len(c) for c in sets)
        cand = np.ones((len(sets), width_c), dtype=np.int64)  # padding rows score item 1, masked below
        for i, c in enumerate(sets):
            cand[i, : len(c)] = c
        return {"prompt_ids": pad_left(prompts, width, self.encoder.slot_id),
                "prompt_mask": pad_left([[1] * len(p) for p in prompts], width, 0),
                "prompt_slots": pad_left(slots, width, 0),
                "student_seq": left_pad_batch(list(histories), self.s.student_len),
                "candidates": torch.from_numpy(cand)}

    @torch.no_grad()
    def rank(self, histories, candidates, top_k):
        self.teacher.eval()
        sets = [self._candidate_set(np.asarray(h), None if candidates is None else candidates[i])
                for i, h in enumerate(histories)]
        batch = self._batch(histories, sets)
        if self.ranking == "grounded":
            scores = self._grounded_scores(batch)
        else:
            scores = score(self.teacher, batch, self.encoder.answers,
                           self.encoder.slot_id, self.chunk_size, self.norm, kv_cache=self.kv_cache).float().cpu()
        for i, c in enumerate(sets):
            scores[i, len(c):] = float("-inf")
        k = min(int(top_k), min(len(c) for c in sets))
        top, idx = scores.topk(k, dim=1)
        return batch["candidates"].gather(1, idx).numpy(), top.numpy()

    @torch.no_grad()
    def _grounded_scores(self, batch: dict) -> torch.Tensor:
        """``[B, C]``: minus the L2 distance between each row's generated answer and each candidate's title,
        both embedded by :meth:`_text_states`."""
        from recdistill.teacher.evaluation import generate_answers

        if self._title_table is None:
            self._title_table = self._text_states([self.encoder.title_ids[i] for i in range(1, self.num_items + 1)],
                                                  "title embeddings for grounding")
            self._title_table = torch.cat([torch.zeros(1, self._title_table.shape[1]), self._title_table])
        texts = generate_answers(self.teacher, batch, self.encoder.tokenizer, self.max_new_tokens)
        # the answer's first line (as LLaRA's parser reads it), or "?" for an empty answer
        answers = [self.encoder.tokenizer(" " + (t.strip().split("\n")[0].strip() or "?"),
                                          add_special_tokens=False)["input_ids"] for t in texts]
        states = self._text_states(answers, None)
        return -torch.linalg.vector_norm(self._title_table[batch["candidates"]] - states[:, None, :], dim=-1)

    @torch.no_grad()
    def item_embeddings(self) -> torch.Tensor | None:
        if not self.embeddings:
            return None
        out = torch.zeros(self.num_items + 1, self.teacher.base_config.hidden_size)
        out[1:] = self._text_states([self.encoder.title_ids[i] for i in range(1, self.num_items + 1)], "item embeddings")
        return out

    @torch.no_grad()
    def _text_states(self, token_lists: list[list[int]], label: str | None) -> torch.Tensor:
        """``[len(token_lists), hidden]``: each token list alone through the teacher's LLM (experts mixed
        uniformly), pooled by ``embedding_pooling``."""
        self.teacher.eval()
        k = self.teacher.spec.lora.num_experts
        hidden = self.teacher.base_config.hidden_size
        out = torch.zeros(len(token_lists), hidden)
        rows = list(range(len(token_lists)))
        bar = progress_report(len(rows), label or "texts", "items", enabled=self.progress and label is not None)
        for start in range(0, len(rows), self.embedding_batch_size):
            chunk = rows[start: start + self.embedding_batch_size]
            ids = [token_lists[i] for i in chunk]
            width = max(len(x) for x in ids)
            tokens = torch.full((len(ids), width), self.encoder.slot_id, dtype=torch.long)
            mask = torch.zeros_like(tokens)
            for r, x in enumerate(ids):
                tokens[r, : len(x)] = torch.tensor(x)
                mask[r, : len(x)] = 1
            if self.teacher.gate is not None:
                self.teacher.set_gate(torch.full((len(ids), k), 1.0 / k, device=self.device))
            res = self.teacher.llm(input_ids=tokens.to(self.device), attention_mask=mask.to(self.device),
                                   output_hidden_states=True, logits_to_keep=1)
            out[torch.tensor(chunk)] = pool_title_states(res.hidden_states[-1].float(), mask.to(self.device),
                                                         self.embedding_pooling).cpu()
            bar.update(len(chunk))
        bar.close()
        return out
