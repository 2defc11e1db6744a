"""Reading delimited text files with errors that name the file, the line and what was expected.

Well-formed files are read by pandas' C parser. It cannot say which line holds a non-numeric id, pads
short rows silently and skips blank lines, so any sign of trouble sends the file through a line-by-line
parser that reports the exact line (numeric checks point at lines through ``Table.lines``). ``::``
(MovieLens-1M) is mapped to one character first, since the C parser takes only one-character separators.
CSV files with quoting go through the standard ``csv`` module instead (see ``parse_csv``).
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from recdistill.errors import DataError

# Separators we try when a line has the wrong number of fields, to say what the file looks like.
_LIKELY_SEPARATORS = {"\t": "tab", "::": "'::'", "|": "'|'", ",": "','", ";": "';'"}


@dataclass(frozen=True)
class RawFile:
    """The bytes of one input file and the name errors show (a path, or ``archive.zip:member``)."""

    name: str
    data: bytes


class Container:
    """A folder or a zip archive holding a dataset's files, looked up by file name.

    A file is found directly in the folder, one level below it (GroupLens zips unpack to ``ml-100k/``), or,
    in a zip, as the one member with that base name.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).expanduser()
        if not self.path.exists():
            raise DataError(f"{self.path} does not exist; set dataset.path to the folder (or .zip) holding the files")
        self._zip_members: dict[str, list[str]] | None = None
        if self.path.is_file():
            if not zipfile.is_zipfile(self.path):
                raise DataError(f"{self.path} is a file but not a zip archive; point dataset.path at the folder "
                                "holding the dataset files, or at the dataset's .zip")
            with zipfile.ZipFile(self.path) as archive:
                members: dict[str, list[str]] = {}
                for member in archive.namelist():
                    if not member.endswith("/"):
                        members.setdefault(member.rsplit("/", 1)[-1], []).append(member)
            self._zip_members = members

    def __str__(self) -> str:
        return str(self.path)

    def _folder_file(self, name: str) -> Path | None:
        direct = self.path / name
        if direct.is_file():
            return direct
        nested = sorted(p for p in self.path.glob(f"*/{name}") if p.is_file())
        return nested[0] if len(nested) == 1 else None

    def has(self, name: str) -> bool:
        if self._zip_members is not None:
            return len(self._zip_members.get(name, [])) == 1
        return self._folder_file(name) is not None

    def read(self, name: str, expected: str = "") -> RawFile:
        """The file ``name``; a DataError saying what was expected when it is missing."""
        what = f" ({expected})" if expected else ""
        if self._zip_members is not None:
            found = self._zip_members.get(name, [])
            if len(found) != 1:
                problem = "has no member" if not found else f"has {len(found)} members"
                raise DataError(f"{self.path} {problem} named {name}{what}")
            with zipfile.ZipFile(self.path) as archive:
                return RawFile(f"{self.path}:{found[0]}", archive.read(found[0]))
        file = self._folder_file(name)
        if file is None:
            raise DataError(f"{self.path / name} is missing{what}; dataset.path must be the folder holding it")
        return RawFile(str(file), file.read_bytes())

    def digest(self, names: list[str]) -> str:
        """SHA-256 of the named files (or of the whole zip), so changed inputs change the fingerprint."""
        sha = hashlib.sha256()
        if self._zip_members is not None:
            sha.update(self.path.read_bytes())
        else:
            for name in names:
                file = self._folder_file(name)
                if file is not None:
                    sha.update(name.encode() + b"\0" + file.read_bytes())
        return sha.hexdigest()


_SINGLE_BYTE = {"latin-1", "latin1", "iso-8859-1", "iso8859-1", "cp1252", "windows-1252"}


def _reject_utf8_as_single_byte(name: str, data: bytes, encoding: str) -> None:
    """Every byte string decodes as latin-1, so a wrong encoding would pass silently and garble titles
    ('é' becoming 'Ã©'). Non-ASCII text that is valid UTF-8 is almost never real latin-1: report it."""
    if data.isascii():
        return
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return  # genuinely single-byte text
    first = next(i for i, byte in enumerate(data) if byte > 127)
    line = data.count(b"\n", 0, first) + 1
    raise DataError(f"{name}, line {line}: expected {encoding} text (as GroupLens ships MovieLens), but the file "
                    f"is UTF-8 ({data[first:first + 4]!r}); set dataset.encoding=utf-8")


def decode(raw: RawFile, encoding: str) -> str:
    """Decode strictly; a wrong encoding is reported with the line it breaks on."""
    data = raw.data
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in data[:4096]:
        raise DataError(f"{raw.name}: looks UTF-16/binary (NUL bytes or a UTF-16 byte-order mark); "
                        f"expected a {encoding} text file. Re-save it as UTF-8 or latin-1 text")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if encoding.lower().replace("_", "-") in _SINGLE_BYTE:
        _reject_utf8_as_single_byte(raw.name, data, encoding)
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise DataError(
            f"{raw.name}, line {line}: bytes {data[exc.start:exc.end + 3]!r} are not valid {encoding}; "
            f"set dataset.encoding to the file's encoding (MovieLens .dat files are latin-1)"
        ) from None
    except LookupError:
        raise DataError(f"unknown encoding {encoding!r} for {raw.name}; use e.g. utf-8 or latin-1") from None


@dataclass
class Table:
    """Columns from a text file (strings, or numbers where the fast parser already read them), with each
    row's line number in that file."""

    name: str
    columns: dict[str, pd.Series]
    lines: np.ndarray

    def __len__(self) -> int:
        return len(self.lines)

    def column(self, key: str) -> list[str]:
        return self.columns[key].astype(str).tolist()

    def error(self, row: int, message: str) -> DataError:
        return DataError(f"{self.name}, line {int(self.lines[row])}: {message}")

    def integers(self, key: str, what: str) -> np.ndarray:
        """Column ``key`` as int64; the first value that is not a whole number is an error."""
        series = self.columns[key]
        if pd.api.types.is_integer_dtype(series.dtype):
            return series.to_numpy(np.int64)
        values = self.numbers(key, what)
        fractional = np.flatnonzero(values != np.floor(values))
        if len(fractional):
            row = int(fractional[0])
            raise self.error(row, f"expected a whole number for {what} ({key}), found {series.iloc[row]!r}")
        return values.astype(np.int64)

    def numbers(self, key: str, what: str) -> np.ndarray:
        """Column ``key`` as float64; the first non-numeric value is an error naming its line."""
        series = self.columns[key]
        if pd.api.types.is_numeric_dtype(series.dtype) and not pd.api.types.is_bool_dtype(series.dtype):
            values = series.to_numpy(np.float64)
        else:
            values = pd.to_numeric(series.astype(object), errors="coerce").to_numpy(np.float64)
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            row = int(bad[0])
            raise self.error(row, f"expected a number for {what} ({key}), found {str(series.iloc[row])!r}")
        return values


def _separator_hint(line: str, sep: str, expected: int) -> str:
    for other, label in _LIKELY_SEPARATORS.items():
        if other != sep and other in line and len(line.split(other)) >= min(expected, 2):
            return f"; the line looks {label}-separated (is this the right file or dataset.separator?)"
    return ""


def parse_delimited(raw: RawFile, *, sep: str, encoding: str, columns: list[str], header: bool = False,
                    numeric: tuple[str, ...] = ()) -> Table:
    """Split each non-empty line on ``sep`` (no quoting) into ``columns``.

    header: the first line names the columns (skipped here; callers check it).
    numeric: columns the fast path may read as numbers; the others stay strings.
    """
    text = decode(raw, encoding)
    if not text.strip():
        raise DataError(f"{raw.name} is empty; expected lines of {len(columns)} {_sep_name(sep)}-separated "
                        f"fields ({', '.join(columns)})")
    table = _parse_fast(raw.name, text, sep, columns, header, numeric)
    return table if table is not None else _parse_checked(raw.name, text, sep, columns, header)


def _parse_fast(name: str, text: str, sep: str, columns: list[str], header: bool,
                numeric: tuple[str, ...]) -> Table | None:
    """pandas' C parser for well-formed files (about 10x faster than splitting in Python); None when any
    line has the wrong number of fields or is blank, so the checked parser can report the exact line."""
    if len(sep) > 1:  # the C parser takes one character: map '::' to the ASCII unit separator
        if "\x1f" in text:
            return None
        text, sep = text.replace(sep, "\x1f"), "\x1f"
    if "\r" in text:
        text = text.replace("\r\n", "\n")  # Windows line ends; a lone \r goes to the checked parser
    if not sep.isascii() or "\r" in text:
        return None
    # Separators per line, counted with numpy: every line must have exactly len(columns) - 1.
    data = np.frombuffer(text.encode("utf-8"), dtype=np.uint8)
    newlines = np.flatnonzero(data == 10)
    starts = np.r_[0, newlines + 1]
    ends = np.r_[newlines, len(data)]
    if starts[-1] == len(data):  # the file ends with a newline: no last line
        starts, ends = starts[:-1], ends[:-1]
    separators = np.flatnonzero(data == ord(sep))
    per_line = np.searchsorted(separators, ends) - np.searchsorted(separators, starts)
    first = 1 if header else 0
    if np.any(per_line[first:] != len(columns) - 1) or np.any(ends[first:] == starts[first:]):
        return None
    frame = pd.read_csv(io.StringIO(text), sep=sep, header=None, names=columns, skiprows=first,
                        dtype={c: str for c in columns if c not in numeric}, quoting=csv.QUOTE_NONE,
                        na_filter=False, engine="c", skip_blank_lines=False, index_col=False)
    if len(frame) != len(per_line) - first:
        return None
    lines = np.arange(first + 1, first + 1 + len(frame), dtype=np.int64)
    return Table(name, {c: frame[c] for c in columns}, lines)


def _parse_checked(name: str, text: str, sep: str, columns: list[str], header: bool) -> Table:
    """Line by line, so every problem is reported with its line number."""
    n = len(columns)
    rows: list[list[str]] = []
    numbers: list[int] = []
    # split("\n"), not splitlines(): the latter also breaks at characters such as U+0085 inside titles
    for number, line in enumerate(text.split("\n"), start=1):
        line = line.rstrip("\r")
        if not line.strip() or (header and number == 1):
            continue
        fields = line.split(sep)
        if len(fields) != n:
            raise DataError(
                f"{name}, line {number}: expected {n} {_sep_name(sep)}-separated fields ({', '.join(columns)}), "
                f"found {len(fields)}: {line[:100]!r}" + _separator_hint(line, sep, n)
            )
        rows.append(fields)
        numbers.append(number)
    if not rows:
        raise DataError(f"{name} has a header but no data lines")
    by_column = {c: pd.Series(list(col), dtype=object) for c, col in zip(columns, zip(*rows))}
    return Table(name, by_column, np.asarray(numbers, dtype=np.int64))


def _sep_name(sep: str) -> str:
    return _LIKELY_SEPARATORS.get(sep, repr(sep))


def parse_csv(raw: RawFile, *, sep: str, encoding: str, required: list[str], optional: list[str]) -> Table:
    """A CSV with a header row and quoting (the ``csv`` module), keeping the named columns."""
    text = decode(raw, encoding)
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep)
    try:
        header = next(reader)
    except StopIteration:
        raise DataError(f"{raw.name} is empty; expected a header row naming {', '.join(required)}") from None
    except csv.Error as exc:
        raise DataError(f"{raw.name}, line 1: {exc}") from None
    header = [h.strip() for h in header]
    missing = [c for c in required if c not in header]
    if missing:
        hint = _separator_hint(sep.join(header), sep, len(required)) if len(header) == 1 else ""
        raise DataError(
            f"{raw.name}, line 1: expected a header with column(s) {', '.join(missing)} "
            f"(separator {_sep_name(sep)}), found columns {header}{hint}. Set dataset.user_col / item_col / "
            "timestamp_col (and title_col, rating_col) to the names in the file"
        )
    wanted = [c for c in required + optional if c in header]
    index = [header.index(c) for c in wanted]
    rows: list[list[str]] = []
    numbers: list[int] = []
    try:
        for fields in reader:
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue
            if len(fields) != len(header):
                raise DataError(f"{raw.name}, line {reader.line_num}: expected {len(header)} fields separated by "
                                f"{_sep_name(sep)} as in the header, found {len(fields)}")
            rows.append([fields[i] for i in index])
            numbers.append(reader.line_num)
    except csv.Error as exc:
        raise DataError(f"{raw.name}, line {reader.line_num}: {exc}") from None
    if not rows:
        raise DataError(f"{raw.name} has a header but no data rows")
    by_column = {c: pd.Series(list(col), dtype=object) for c, col in zip(wanted, zip(*rows))}
    return Table(raw.name, by_column, np.asarray(numbers, dtype=np.int64))
