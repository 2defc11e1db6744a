"""The built-in formats' readers (``data/formats/`` says which files each format reads with which), all
returning the same two frames; ``interactions_frame`` and ``items_frame`` build them for a new format's reader.

* interactions: ``user`` and ``item`` (original ids as categoricals: int64 categories for the MovieLens
  formats, str otherwise),
  ``timestamp`` (int64),
  ``rating`` (float64, NaN when the format has none), ``line`` (int64, the line in the source file);
  rows in file order (the split relies on it to break timestamp ties).
  ``frame.attrs["file"]`` names the file, for errors found later.
* items: ``original_id`` (str), ``title`` (str, without the trailing "(year)"), ``year`` (Int32, null
  when unknown), ``genres`` (list of str).

Ids are labels. Ids of the MovieLens formats must be whole numbers that fit 64 bits (they are
normalised, so "007" and "7" are one id; a larger one is an error, never a wrapped value); RecBole
``:token`` ids and CSV ids are kept as the text they are (surrounding spaces removed), as categoricals.

Every file is read by pyarrow's CSV reader (see ``columnar``); the functions here say which columns a
format has and what each must hold.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd
import pyarrow as pa

from recdistill.data.columnar import TextFormat, header_fields, read_columns, separator_hint, separator_name
from recdistill.data.files import Container, RawFile
from recdistill.data.values import Columns
from recdistill.errors import DataError

# The 19 genre flags at the end of each ML-100K u.item line, in file order (GroupLens README).
ML100K_GENRES = ("unknown", "Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary",
                 "Drama", "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi",
                 "Thriller", "War", "Western")

# "Title (1995)"; GroupLens marks a few direct-to-video titles "Title (1995) (V)" - the marker is dropped.
_YEAR_IN_TITLE = re.compile(r"\s*\((\d{4})\)\s*(\(V\))?\s*$")


def split_title_year(title: str) -> tuple[str, int | None]:
    """'Toy Story (1995)' -> ('Toy Story', 1995); a title without a trailing year is kept whole."""
    match = _YEAR_IN_TITLE.search(title)
    if not match:
        return title.strip(), None
    return title[: match.start()].strip(), int(match.group(1))


def interactions_frame(table: Columns, user: str, item: str, timestamp: str, rating: str | None,
                  numeric_ids: bool) -> pd.DataFrame:
    if numeric_ids:
        users, items = table.integer_labels(user, "user id"), table.integer_labels(item, "item id")
        stamps = table.integers(timestamp, "timestamp (whole seconds)")
    else:
        users, items = table.labels(user), table.labels(item)
        stamps = table.floored(timestamp, "timestamp")
    frame = pd.DataFrame({
        "user": users,
        "item": items,
        "timestamp": stamps,
        "rating": table.numbers(rating, "rating") if rating else np.full(len(table), np.nan),
        "line": table.lines,
    }, copy=False)  # no second copy of every column (pandas copies a dict of arrays by default)
    frame.attrs["file"] = table.name
    return frame


def items_frame(ids, titles, years, genres) -> pd.DataFrame:
    return pd.DataFrame({
        "original_id": pd.Series(list(ids), dtype=object),
        "title": pd.Series(list(titles), dtype=object),
        "year": pd.array(list(years), dtype="Int32"),
        "genres": pd.Series(list(genres), dtype=object),
    })


def _check_unique_items(table: Columns, ids: list[str]) -> None:
    seen: dict[str, int] = {}
    for row, item in enumerate(ids):
        if item in seen:
            raise table.error(row, f"item id {item} appears twice (first on line {int(table.lines[seen[item]])}); "
                                   "expected one line per item")
        seen[item] = row


# --- MovieLens-100K (GroupLens u.data / u.item) -------------------------------------------------------

def read_ml100k_ratings(raw: RawFile, encoding: str = "latin-1") -> pd.DataFrame:
    """u.data: ``user \\t item \\t rating \\t timestamp``, no header."""
    columns = ["user_id", "item_id", "rating", "timestamp"]
    table = read_columns(raw, TextFormat("\t", encoding), columns, labels=("user_id", "item_id"))
    return interactions_frame(table, "user_id", "item_id", "timestamp", "rating", numeric_ids=True)


def read_ml100k_items(raw: RawFile, encoding: str = "latin-1") -> pd.DataFrame:
    """u.item: ``id|title (year)|release date|video release date|IMDb URL|`` + 19 genre flags, latin-1."""
    columns = ["item_id", "title", "release_date", "video_release_date", "url", *ML100K_GENRES]
    table = read_columns(raw, TextFormat("|", encoding), columns)
    ids = table.integers("item_id", "item id").astype(str).tolist()
    _check_unique_items(table, ids)
    titles, years = zip(*(split_title_year(t) for t in table.text("title")))
    # Titles without "(year)" fall back to the release date (dd-Mon-yyyy).
    years = [y if y is not None else _year_of_date(d) for y, d in zip(years, table.text("release_date"))]
    flags = np.stack([table.integers(g, f"genre flag {g!r} (0 or 1)") for g in ML100K_GENRES], axis=1)
    genres = [[g for g, on in zip(ML100K_GENRES, row) if on] for row in flags]
    return items_frame(ids, titles, years, genres)


def _year_of_date(date: str) -> int | None:
    match = re.search(r"(\d{4})\s*$", date)
    return int(match.group(1)) if match else None


def read_ml100k(container: Container, encoding: str = "latin-1") -> tuple[pd.DataFrame, pd.DataFrame]:
    interactions = read_ml100k_ratings(container.read("u.data", "the MovieLens-100K ratings"), encoding)
    items = read_ml100k_items(container.read("u.item", "the MovieLens-100K movie titles"), encoding)
    return interactions, items


# --- MovieLens-1M (ratings.dat / movies.dat) ----------------------------------------------------------

def read_ml1m(container: Container, encoding: str = "latin-1") -> tuple[pd.DataFrame, pd.DataFrame]:
    """ratings.dat ``UserID::MovieID::Rating::Timestamp``; movies.dat ``MovieID::Title (year)::G1|G2``."""
    ratings = read_columns(container.read("ratings.dat", "UserID::MovieID::Rating::Timestamp lines"),
                           TextFormat("::", encoding), ["user_id", "item_id", "rating", "timestamp"],
                           labels=("user_id", "item_id"))
    interactions = interactions_frame(ratings, "user_id", "item_id", "timestamp", "rating", numeric_ids=True)
    movies = read_columns(container.read("movies.dat", "MovieID::Title::Genres lines"),
                          TextFormat("::", encoding), ["item_id", "title", "genres"])
    ids = movies.integers("item_id", "item id").astype(str).tolist()
    _check_unique_items(movies, ids)
    titles, years = zip(*(split_title_year(t) for t in movies.text("title")))
    genres = [[g for g in field.strip().split("|") if g] for field in movies.text("genres")]
    return interactions, items_frame(ids, titles, years, genres)


# --- RecBole atomic files (.inter / .item) ------------------------------------------------------------

def _typed_header(raw: RawFile, encoding: str) -> list[tuple[str, str]]:
    """RecBole's first line: ``name:type`` fields separated by tabs."""
    fields = header_fields(raw, TextFormat("\t", encoding))
    parsed = []
    for field in fields or [""]:
        name, _, kind = field.partition(":")
        if not kind:
            raise DataError(f"{raw.name}, line 1: expected a RecBole header of tab-separated name:type fields "
                            f"(e.g. user_id:token), found {chr(9).join(fields)[:100]!r}")
        parsed.append((name, kind))
    return parsed


def _pick(names: list[str], wanted: tuple[str, ...], raw: RawFile, what: str, required: bool = True) -> str | None:
    for name in wanted:
        if name in names:
            return name
    if required:
        raise DataError(f"{raw.name}, line 1: expected a {what} column (one of {', '.join(wanted)}), "
                        f"found {', '.join(names)}")
    return None


def read_recbole_inter(raw: RawFile, encoding: str = "utf-8") -> pd.DataFrame:
    header = _typed_header(raw, encoding)
    names = [name for name, _ in header]
    user = _pick(names, ("user_id",), raw, "user")
    item = _pick(names, ("item_id",), raw, "item")
    timestamp = _pick(names, ("timestamp",), raw, "timestamp")
    rating = _pick(names, ("rating",), raw, "rating", required=False)
    keep = [c for c in (user, item, timestamp, rating) if c]
    table = read_columns(raw, TextFormat("\t", encoding), names, header=True, keep=keep, labels=(user, item))
    return interactions_frame(table, user, item, timestamp, rating, numeric_ids=False)


def read_recbole_item(raw: RawFile, encoding: str = "utf-8", title_field: str | None = None) -> pd.DataFrame:
    header = _typed_header(raw, encoding)
    names = [name for name, _ in header]
    item = _pick(names, ("item_id",), raw, "item")
    title = _pick(names, (title_field,) if title_field else ("movie_title", "title", "name"), raw,
                  "title" + (" (dataset.title_field)" if title_field else ""))
    year = _pick(names, ("release_year", "year"), raw, "year", required=False)
    genre = _pick(names, ("class", "genre", "genres", "categories"), raw, "genre", required=False)
    table = read_columns(raw, TextFormat("\t", encoding), names, header=True)
    ids = [i.strip() for i in table.text(item)]
    _check_unique_items(table, ids)
    titles, title_years = zip(*(split_title_year(t) for t in table.text(title)))
    if year:
        raw_years = pd.to_numeric(pd.Series(table.text(year), dtype=object), errors="coerce")
        years = [int(y) if pd.notna(y) else t for y, t in zip(raw_years, title_years)]
    else:
        years = list(title_years)
    genres = [g.split() for g in table.text(genre)] if genre else [[] for _ in ids]
    return items_frame(ids, titles, years, genres)


def read_recbole(container: Container, stem: str, encoding: str = "utf-8",
                 title_field: str | None = None) -> tuple[pd.DataFrame, pd.DataFrame | None]:
    interactions = read_recbole_inter(container.read(f"{stem}.inter", "RecBole atomic interactions"), encoding)
    items = None
    if container.has(f"{stem}.item"):
        items = read_recbole_item(container.read(f"{stem}.item"), encoding, title_field)
    return interactions, items


# --- Plain CSV ----------------------------------------------------------------------------------------

def _read_csv_columns(raw: RawFile, fmt: TextFormat, required: list[str], optional: list[str],
                      labels: tuple[str, ...]) -> Columns:
    """A CSV with a header row and quoting, keeping the named columns (optional ones when present)."""
    header = header_fields(raw, fmt)
    if not header:
        raise DataError(f"{raw.name} is empty; expected a header row naming {', '.join(required)}")
    missing = [c for c in required if c not in header]
    if missing:
        hint = separator_hint(fmt.separator.join(header), fmt.separator, len(required)) if len(header) == 1 else ""
        raise DataError(
            f"{raw.name}, line 1: expected a header with column(s) {', '.join(missing)} "
            f"(separator {separator_name(fmt.separator)}), found columns {header}{hint}. Set dataset.user_col / "
            "item_col / timestamp_col (and title_col, rating_col) to the names in the file")
    if len(set(header)) != len(header):
        repeated = sorted({h for h in header if header.count(h) > 1})
        raise DataError(f"{raw.name}, line 1: column name(s) {', '.join(repeated)} appear more than once in the header")
    keep = [c for c in dict.fromkeys(required + optional) if c in header]
    return read_columns(raw, fmt, header, header=True, keep=keep, labels=labels)


def read_csv(raw: RawFile, *, separator: str, encoding: str, user_col: str, item_col: str, timestamp_col: str,
             rating_col: str | None = None, title_col: str | None = None, genres_col: str | None = None,
             genres_separator: str = "|") -> tuple[pd.DataFrame, pd.DataFrame | None]:
    """Interactions with a header row; titles (and genres) from columns of the same file when named."""
    optional = [c for c in (title_col, genres_col) if c]
    table = _read_csv_columns(raw, TextFormat(separator, encoding, quoting=True),
                              [user_col, item_col, timestamp_col] + ([rating_col] if rating_col else []), optional,
                              labels=(user_col, item_col))
    interactions = interactions_frame(table, user_col, item_col, timestamp_col, rating_col, numeric_ids=False)
    if not title_col or title_col not in table:
        return interactions, None
    # each item's title (and genres) from its first row
    codes = interactions["item"].cat.codes.to_numpy()
    present, rows = np.unique(codes, return_index=True)
    ids = interactions["item"].cat.categories[present]
    take = pa.array(rows)
    titles, years = zip(*(split_title_year(str(t)) for t in table.strings(title_col).take(take).to_pylist()))
    genres = ([[g.strip() for g in str(f).split(genres_separator) if g.strip()]
               for f in table.strings(genres_col).take(take).to_pylist()]
              if genres_col and genres_col in table else [[] for _ in rows])
    return interactions, items_frame([str(i) for i in ids], titles, years, genres)


def read_items_csv(raw: RawFile, *, separator: str, encoding: str, item_col: str, title_col: str,
                   genres_col: str | None = None, genres_separator: str = "|") -> pd.DataFrame:
    """A separate CSV of item titles (dataset.items_path)."""
    table = _read_csv_columns(raw, TextFormat(separator, encoding, quoting=True), [item_col, title_col],
                              [genres_col] if genres_col else [], labels=())
    ids = [i.strip() for i in table.text(item_col)]
    _check_unique_items(table, ids)
    titles, years = zip(*(split_title_year(t) for t in table.text(title_col)))
    genres = ([[g.strip() for g in field.split(genres_separator) if g.strip()] for field in table.text(genres_col)]
              if genres_col and genres_col in table else [[] for _ in ids])
    return items_frame(ids, titles, years, genres)
