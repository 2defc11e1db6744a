"""An LLM's view of an item from its text alone: the frozen model's hidden states over a short description
("Toy Story (1995). Genres: Animation, Children's, Comedy."), pooled to one vector per item.

This is what lets a student score an item nobody has interacted with: it needs no interaction, only the
item's text, so a new release can be embedded at training time or added to a served model later
(``recdistill add-items``). Used as the embedding-distillation source (``distill.item_embeddings``), by the
content-only baseline (``evaluation/baselines.py``), and by ``add-items``.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from recdistill.engine.progress import progress as progress_report

TEXTS = ("title", "title_year_genres")
POOLINGS = ("mean", "last")


def item_text(title: str, year=None, genres=None, how: str = "title_year_genres") -> str:
    """One item's description; unknown year or genres are left out (never written as 'nan')."""
    title = str(title).strip()
    if how == "title":
        return title
    text = title
    if _known(year) and str(year).strip():
        text += f" ({int(float(year))})"
    names = [str(g) for g in (genres if genres is not None else []) if str(g).strip()]
    text += "."
    if names:
        text += " Genres: " + ", ".join(names) + "."
    return text


def catalogue_texts(items, how: str = "title_year_genres") -> list[str]:
    """``[""] + one text per item id 1..N`` from a prepared ``items`` table (title, year, genres)."""
    years = items["year"] if "year" in items else [None] * len(items)
    genres = items["genres"] if "genres" in items else [None] * len(items)
    return [""] + [item_text(t, y, list(g) if _known(g) else None, how) for t, y, g in zip(items["title"], years, genres)]


def _known(value) -> bool:
    """False for None, NaN and pandas' NA (a missing year or genre list)."""
    if value is None:
        return False
    if isinstance(value, (list, tuple, np.ndarray)):
        return True
    try:
        return not bool(pd.isna(value))
    except (TypeError, ValueError):
        return True


@torch.no_grad()
def embed_texts(model, tokenizer, texts: list[str], pooling: str = "mean", batch_size: int = 32,
                progress: bool = True) -> torch.Tensor:
    """``[len(texts), hidden]`` float32: the last hidden state of each text, mean-pooled over its tokens or
    taken at its last token. Texts are sorted by length so batches carry little padding."""
    if pooling not in POOLINGS:
        raise ValueError(f"pooling must be one of {POOLINGS}, not {pooling!r}")
    model.eval()
    device = next(model.parameters()).device
    encoded = [tokenizer(t, add_special_tokens=False)["input_ids"] or [tokenizer.eos_token_id] for t in texts]
    order = np.argsort([len(x) for x in encoded], kind="stable")
    out = torch.zeros(len(texts), int(model.config.hidden_size))
    bar = progress_report(len(texts), "item embeddings", "items", enabled=progress)
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    for start in range(0, len(order), batch_size):
        rows = order[start: start + batch_size]
        width = max(len(encoded[r]) for r in rows)
        ids = torch.full((len(rows), width), pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for j, r in enumerate(rows):
            ids[j, : len(encoded[r])] = torch.tensor(encoded[r])
            mask[j, : len(encoded[r])] = 1
        states = model(input_ids=ids.to(device), attention_mask=mask.to(device), output_hidden_states=True,
                       logits_to_keep=1).hidden_states[-1].float()
        m = mask.to(device)
        if pooling == "last":
            pooled = states[torch.arange(len(rows), device=device), m.sum(1) - 1]
        else:
            pooled = (states * m.unsqueeze(-1)).sum(1) / m.sum(1, keepdim=True)
        out[torch.as_tensor(rows)] = pooled.cpu()
        bar.update(len(rows))
    bar.close()
    return out
