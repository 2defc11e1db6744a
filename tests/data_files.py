"""Writers of small dataset files in each raw format, for the data tests (and any test that needs a
dataset to prepare). Each takes rows ``(user, item, rating, timestamp)`` and items ``(id, title, genres)``."""

from __future__ import annotations

import dataclasses
import functools
import zipfile
from pathlib import Path

from recdistill.data.readers import ML100K_GENRES
from recdistill.data.split import SplitOptions

# Three users; user 3 has only two interactions (dropped by the split). User 1 has a timestamp tie
# (items 20 and 10 at t=200, in that file order). Titles include latin-1 characters.
ROWS = [
    (1, 10, 5, 100), (2, 20, 3, 150), (1, 20, 4, 200), (1, 30, 2, 300), (2, 10, 4, 160),
    (1, 40, 3, 400), (2, 30, 5, 170), (3, 10, 1, 50), (3, 40, 2, 60), (1, 10, 4, 200),
]
ITEMS = [
    (10, "Amélie (2001)", ["Comedy", "Romance"]),
    (20, "Cité des enfants perdus, La (1995)", ["Adventure", "Sci-Fi"]),
    (30, "Toy Story (1995)", ["Animation", "Children's", "Comedy"]),
    (40, "unknown", ["unknown"]),
]


def write_grouplens_100k(folder: Path, rows=ROWS, items=ITEMS, encoding: str = "latin-1") -> Path:
    """u.data (tab-separated) and u.item (``|``-separated, 19 genre flags), as GroupLens ships them."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "u.data").write_bytes("".join(f"{u}\t{i}\t{r}\t{t}\n" for u, i, r, t in rows).encode(encoding))
    lines = []
    for item, title, genres in items:
        flags = "|".join("1" if g in genres else "0" for g in ML100K_GENRES)
        date = "01-Jan-1995" if "(" in title else ""
        lines.append(f"{item}|{title}|{date}||http://example.org/{item}|{flags}\n")
    (folder / "u.item").write_bytes("".join(lines).encode(encoding))
    return folder


def zip_folder(folder: Path, archive: Path, prefix: str = "ml-100k/") -> Path:
    with zipfile.ZipFile(archive, "w") as zf:
        for file in sorted(folder.iterdir()):
            zf.write(file, prefix + file.name)
    return archive


def write_ml1m(folder: Path, rows=ROWS, items=ITEMS, encoding: str = "latin-1") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "ratings.dat").write_bytes("".join(f"{u}::{i}::{r}::{t}\n" for u, i, r, t in rows).encode(encoding))
    (folder / "movies.dat").write_bytes(
        "".join(f"{i}::{title}::{'|'.join(genres)}\n" for i, title, genres in items).encode(encoding))
    return folder


def write_recbole(folder: Path, stem: str, rows=ROWS, items=ITEMS) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    inter = ["user_id:token\titem_id:token\trating:float\ttimestamp:float"]
    inter += [f"{u}\t{i}\t{r}\t{t}" for u, i, r, t in rows]
    (folder / f"{stem}.inter").write_text("\n".join(inter) + "\n", encoding="utf-8")
    item_lines = ["item_id:token\tmovie_title:token_seq\trelease_year:token\tclass:token_seq"]
    for item, title, genres in items:
        name, _, year = title.rpartition(" (")
        name, year = (name, year.rstrip(")")) if name else (title, "")
        item_lines.append(f"{item}\t{name}\t{year}\t{' '.join(genres)}")
    (folder / f"{stem}.item").write_text("\n".join(item_lines) + "\n", encoding="utf-8")
    return folder


def write_csv(file: Path, rows=ROWS, items=ITEMS, sep: str = ",") -> Path:
    titles = {i: t for i, t, _ in items}
    lines = [sep.join(["user_id", "item_id", "rating", "timestamp", "title"])]
    for u, i, r, t in rows:
        title = titles[i]
        quoted = f'"{title}"' if sep in title or '"' in title else title
        lines.append(sep.join([f"u{u}", f"i{i}", str(r), str(t), quoted]))
    file.parent.mkdir(parents=True, exist_ok=True)
    file.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return file


def split_options(**changes) -> SplitOptions:
    """The split options of the default dataset group (its YAML is the one place with defaults), changed."""
    return dataclasses.replace(_default_split_options(), **changes)


@functools.lru_cache(maxsize=1)
def _default_split_options() -> SplitOptions:
    from recdistill.config.compose import compose
    from recdistill.data.prepare import split_options as from_settings
    from recdistill.recipes.dataset_settings import dataset_settings

    return from_settings(dataset_settings(compose("prepare", [])))
