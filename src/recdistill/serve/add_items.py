"""New items in a trained model without retraining: ``recdistill add-items MODEL items.csv``.

A distilled student whose item representation is ``e(i) = e_id(i) + gamma * MLP(e_llm(i))`` can score an
item it never saw from its text alone: the new item's ID row is zero (as the rows of held-out items are in
training, :mod:`recdistill.distill.module`), and its LLM embedding comes from the same frozen LLM, text
format and pooling as the training embeddings (``recdistill embed-items``), normalised with the training
catalogue's statistics. Nothing else of the model changes, so every existing item scores exactly as before.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from recdistill.errors import RecdistillError
from recdistill.serve.catalogue import Catalogue


def read_new_items(path: str | Path) -> pd.DataFrame:
    """``title`` (required), ``year``, ``genres`` (``|``-separated), ``original_id``; a clear error otherwise."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise RecdistillError(f"no items file at {path}; give a CSV with a title column (and year, genres where known)")
    try:
        frame = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except (UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as exc:
        raise RecdistillError(f"{path} is not a readable UTF-8 CSV: {exc}") from None
    if "title" not in frame.columns:
        raise RecdistillError(f"{path} has no 'title' column (columns: {', '.join(frame.columns) or 'none'}); "
                              "expected title, and optionally year, genres (separated by |) and original_id")
    frame["title"] = frame["title"].str.strip()
    if (frame["title"] == "").any():
        rows = (np.flatnonzero(frame["title"] == "") + 2).tolist()[:5]
        raise RecdistillError(f"{path}: empty title on line(s) {rows}")
    if frame.empty:
        raise RecdistillError(f"{path} lists no items")
    year = frame["year"].str.strip() if "year" in frame else pd.Series([""] * len(frame))
    bad = [(i + 2, y) for i, y in enumerate(year) if y and not y.isdigit()]
    if bad:
        raise RecdistillError(f"{path}: year must be a whole number, line {bad[0][0]} has {bad[0][1]!r}")
    frame["year"] = [int(y) if y else None for y in year]
    genres = frame["genres"] if "genres" in frame else pd.Series([""] * len(frame))
    frame["genres"] = [[g.strip() for g in str(x).split("|") if g.strip()] for x in genres]
    if "original_id" not in frame:
        frame["original_id"] = ""
    return frame


def normalise_like_training(raw_new: torch.Tensor, raw_training: torch.Tensor, how: str) -> torch.Tensor:
    """The new rows under the transform :func:`recdistill.student.distilled.normalise_embeddings` applied
    to the training table (its mean and scale come from the training catalogue, never from the new rows)."""
    raw_new = raw_new.float()
    if how != "standard":
        return raw_new
    items = raw_training.float()[1:]
    centred = items - items.mean(0, keepdim=True)
    return (raw_new - items.mean(0, keepdim=True)) / centred.std().clamp_min(1e-8)


def extend_model(model, new_llm_rows: torch.Tensor):
    """A copy of the distilled ``model`` with ``M = len(new_llm_rows)`` more items (ids N+1..N+M): zero ID
    rows, the given (already normalised) LLM rows; everything else unchanged."""
    from recdistill.student.distilled import is_distilled

    if not is_distilled(model) or not model.uses_llm:
        raise RecdistillError("this model has no LLM item embeddings, so it cannot score an item without "
                              "interactions; train it with `recdistill train distill` and embedding distillation "
                              "(distill.item_embeddings=<embed-items file>)")
    if model.tie == "untied":
        raise RecdistillError("an untied model (distill.ed.tie=untied) scores items from an ID-only output table; "
                              "new items need distill.ed.tie=tied")
    m = int(new_llm_rows.shape[0])
    cfg = dict(model.config)
    llm = torch.cat([model.llm_embeddings, new_llm_rows.to(model.llm_embeddings.dtype)])
    extended = type(model)(cfg.pop("num_items") + m, llm_embeddings=torch.zeros_like(llm), gamma=model.gamma,
                           mlp_layers=sum(isinstance(x, torch.nn.Linear) for x in model.llm_projection),
                           mlp_hidden=_hidden(model), normalize="none", **cfg)
    state = model.state_dict()
    hidden = state["item_embedding.weight"].shape[1]
    state["item_embedding.weight"] = torch.cat([state["item_embedding.weight"], torch.zeros(m, hidden)])
    state["llm_embeddings"] = llm
    extended.load_state_dict(state)
    return extended.eval()


def _hidden(model) -> int:
    linears = [x for x in model.llm_projection if isinstance(x, torch.nn.Linear)]
    return int(linears[0].out_features) if len(linears) > 1 else 256


def extend_catalogue(catalogue: Catalogue, items: pd.DataFrame) -> Catalogue:
    start = catalogue.num_items + 1
    ids = [str(x) if str(x) else f"new-{start + i}" for i, x in enumerate(items["original_id"])]
    years = None if catalogue.years is None else np.concatenate(
        [catalogue.years, np.asarray([y or 0 for y in items["year"]], dtype=np.int64)])
    return Catalogue(np.concatenate([catalogue.original_ids, np.asarray(ids, dtype=object)]),
                     np.concatenate([catalogue.titles, items["title"].to_numpy(dtype=object)]),
                     catalogue.histories, catalogue.fingerprint, years)
