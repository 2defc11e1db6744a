"""The frozen SASRec scored on candidate sets: its dot-product scores of the listed candidates."""

from __future__ import annotations

import torch

from recdistill.data.sequences import left_pad_batch
from recdistill.evaluation.candidates import CandidateSets
from recdistill.evaluation.candidate_metrics import candidate_metrics, target_ranks


@torch.no_grad()
def student_scores(student, histories, candidates, window: int | None = None, batch_size: int = 256) -> torch.Tensor:
    """``[N, C]`` dot-product scores of ``candidates[i]`` (ids, ``[N, C]``) after ``histories[i]`` (oldest
    first). ``window``: the student reads the newest ``window`` items (None = its whole ``max_len``)."""
    student.eval()
    device = next(student.parameters()).device
    length = student.max_len if window is None else min(int(window), student.max_len)
    out = []
    for start in range(0, len(histories), batch_size):
        seq = left_pad_batch(list(histories[start:start + batch_size]), length).to(device)
        cands = torch.as_tensor(candidates[start:start + batch_size]).to(device)
        out.append(student.score_items(student.user_representation(seq), cands).float().cpu())
    return torch.cat(out)


def student_ranks(student, sets: CandidateSets, window: int | None = None, batch_size: int = 256) -> torch.Tensor:
    """0-based rank of each target among its candidates (ties count against it)."""
    scores = student_scores(student, sets.histories, sets.candidates, window, batch_size)
    return target_ranks(scores, torch.from_numpy(sets.target_index))


def student_metrics(student, sets: CandidateSets, window: int | None = None) -> dict[str, float]:
    """cand<C>_hr@1, _hr@5, _ndcg@5, _ndcg@10 of the student on these sets."""
    return candidate_metrics(student_ranks(student, sets, window), sets.candidates.shape[1])
