"""The report's "By item popularity" section: full-catalogue NDCG@10 of each model per bucket of the
target's popularity (:mod:`recdistill.evaluation.buckets`), with users, chance, and intervals over seeds; and,
where new items are held out, whether the ID-only student is near chance on them (it must be: it has
never seen them)."""

from __future__ import annotations

from recdistill.evaluation.buckets import BUCKETS
from recdistill.report.aggregate import compare_paired, summarize
from recdistill.report.seeds import SeedGroup
from recdistill.report.tables import markdown_table

NEAR_CHANCE = 3.0  # "near chance": within 3x the chance level


def _cell(values: dict) -> str:
    if not values:
        return "–"
    s = summarize(list(values.values()))
    return f"{s.mean:.4f}" if s.low is None else f"{s.mean:.4f} [{s.low:.4f}, {s.high:.4f}]"


def _as_values(group: SeedGroup, key: str) -> dict:
    return {0: group.runs[0].numeric_metrics[key]} if key in group.runs[0].numeric_metrics else {}


def _first(groups: list[SeedGroup], key: str):
    return next((r.numeric_metrics[key] for g in groups for r in g.runs if key in r.numeric_metrics), None)


def bucket_section(groups: list[SeedGroup], split: str = "test", baselines: list[SeedGroup] = ()) -> list[str]:
    """Markdown lines (empty when no run recorded bucket metrics). ``baselines`` (popularity, content) get
    columns of their own: deterministic, so they have no interval."""
    present = [b for b in BUCKETS if _first(groups, f"{split}/{b}_ndcg@10") is not None]
    if not present:
        return []
    tail, head = _first(groups, f"{split}/bucket_tail_max_count"), _first(groups, f"{split}/bucket_head_min_count")
    parts = ["## By item popularity", "",
             f"{split.capitalize()} NDCG@10 over the full catalogue, users grouped by their target's number of training "
             f"interactions: tail 1–{tail:.0f}, head ≥ {head:.0f} (the most popular 20 % of items), torso between"
             + ("; new: none (held out of training, `dataset.new_items`); warm: every other user" if "new" in present
                else "") + ". Mean and [95 % interval] over seeds where there are several.", ""]
    header = ["bucket", "users", "chance"] + [g.label for g in groups] + [g.label for g in baselines]
    rows = []
    for b in present:
        users = _first(groups, f"{split}/{b}_users")
        chance = _first(groups, f"{split}/{b}_chance_ndcg@10")
        rows.append([b, f"{users:.0f}", "–" if chance is None else f"{chance:.4f}"]
                    + [_cell(g.values(f"{split}/{b}_ndcg@10")) for g in groups]
                    + [_cell(_as_values(g, f"{split}/{b}_ndcg@10")) for g in baselines])
    parts += [markdown_table(header, rows), ""]
    if len(groups) > 1:
        base = groups[0]
        for other in groups[1:]:
            lines = []
            for b in present:
                a, o = base.values(f"{split}/{b}_ndcg@10"), other.values(f"{split}/{b}_ndcg@10")
                if set(a) & set(o):
                    d = compare_paired(a, o).difference
                    span = "one seed: no interval" if d.low is None else f"[{d.low:+.4f}, {d.high:+.4f}]"
                    lines.append([b, f"{d.mean:+.4f}", span])
            if lines:
                parts += [f"{other.label} minus {base.label}, paired by seed:", "",
                          markdown_table(["bucket", "difference", "95 % interval"], lines), ""]
    if "new" in present:
        chance = _first(groups, f"{split}/new_chance_ndcg@10") or 0.0
        for g in groups:
            value = g.values(f"{split}/new_ndcg@10")
            if value and not (g.runs[0].config or {}).get("distill"):  # a student run: its config has no distill group
                mean = summarize(list(value.values())).mean
                verdict = "at or near chance (within 3x), as it must be" if mean <= NEAR_CHANCE * chance else \
                    "above chance (it has never seen these items: check the split)"
                parts += [f"The ID-only {g.label} scores {mean:.4f} on new-item users against chance {chance:.4f}: "
                          f"{verdict}.", ""]
    return parts


def baseline_groups(runs) -> list[SeedGroup]:
    """Popularity (and the content-only ranker, where a run names an ``embed-items`` file) on the runs'
    prepared data, as one-run groups for :func:`bucket_section`; empty when the data cannot be found."""
    from pathlib import Path

    from recdistill.data.prepared import load_prepared
    from recdistill.data.settings import prepared_folder_name
    from recdistill.errors import RecdistillError
    from recdistill.evaluation.baselines import baseline_metrics
    from recdistill.report.runs import RunInfo

    config = next((r.config for r in runs if r.config.get("dataset")), None)
    if config is None:
        return []
    dataset = config["dataset"]  # a saved run's config: runs from before dataset.new_items lack its keys
    folder = config.get("prepared") or Path(str((config.get("paths") or {}).get("data_dir", "data"))).expanduser() / \
        prepared_folder_name(dataset["name"], dataset.get("new_items"), dataset.get("new_items_by"),
                             dataset.get("new_items_seed"))
    try:
        data = load_prepared(Path(str(folder)).expanduser())
    except (RecdistillError, OSError):
        return []
    embeddings_file = next((((r.config.get("distill") or {}).get("item_embeddings")) for r in runs
                            if (r.config.get("distill") or {}).get("item_embeddings")), None)
    if embeddings_file is None:  # else the LLM embeddings a distillation read from the teacher outputs
        from recdistill.teacher_outputs.format import EMBEDDINGS

        exported = [Path(str((r.config.get("distill") or {}).get("teacher_outputs") or "")) / EMBEDDINGS for r in runs
                    if (r.config.get("distill") or {}).get("teacher_outputs")]
        embeddings_file = next((str(f) for f in exported if f.is_file()), None)
    out = []
    for name in ("popularity", "content"):
        embeddings = None
        if name == "content":
            if not embeddings_file:
                continue
            from recdistill.teacher.item_embeddings import read_item_embeddings

            try:
                embeddings = read_item_embeddings(embeddings_file, data.num_items)[0]
            except RecdistillError:
                continue
        metrics = {**baseline_metrics(name, data, "val", embeddings), **baseline_metrics(name, data, "test", embeddings)}
        out.append(SeedGroup(name, [RunInfo(Path(name), name, {"baseline": name}, metrics)]))
    return out
