"""Reading delimited text into columns with pyarrow's CSV reader, errors naming the file and the line.

Why pyarrow.csv: on a 2 M-row interactions CSV (benchmarks/prepare/reader_choice.py, 2-core VM) it read in
0.17 s, as fast as polars (0.17 s) and faster than DuckDB (0.27 s), and it is already a dependency (the
prepared files are Parquet). It reads multi-threaded in blocks and keeps every column as text here, so
ids stay exactly as written; numbers are converted afterwards by ``Columns``, whose errors name the line.

pyarrow does not say on which line a problem is, so when it refuses a file the bytes are scanned again
(only then) to find the first bad line. ``::`` (MovieLens-1M) is mapped to one byte first, since
pyarrow takes one-character separators. Blank lines are skipped.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.csv as pcsv

from recdistill.data.encoding import to_utf8
from recdistill.data.files import RawFile
from recdistill.engine.progress import ProgressStream, ReadProgress
from recdistill.errors import DataError

# Separators we try when a line has the wrong number of fields, to say what the file looks like.
LIKELY_SEPARATORS = {"\t": "tab", "::": "'::'", "|": "'|'", ",": "','", ";": "';'"}
_UNIT_SEPARATOR = b"\x1f"  # stands in for a multi-character separator


@dataclass(frozen=True)
class TextFormat:
    """How a file is laid out. quoting: CSV quoting (``"a, b"``, ``""`` for a quote, newlines inside)."""

    separator: str
    encoding: str = "utf-8"
    quoting: bool = False
    progress_interval_s: float = 5.0   # a progress line this often while a read lasts longer


def separator_name(sep: str) -> str:
    return LIKELY_SEPARATORS.get(sep, repr(sep))


def separator_hint(line: str, sep: str, expected: int) -> str:
    for other, label in LIKELY_SEPARATORS.items():
        if other != sep and other in line and len(line.split(other)) >= min(expected, 2):
            return f"; the line looks {label}-separated (is this the right file or dataset.separator?)"
    return ""


def header_fields(raw: RawFile, fmt: TextFormat) -> list[str]:
    """The first line's fields, stripped (an empty list for an empty file)."""
    head = RawFile(raw.name, raw.data[:raw.data.find(b"\n")] if b"\n" in raw.data else raw.data)
    line = to_utf8(head, fmt.encoding).decode("utf-8").rstrip("\r")
    if not line.strip():
        return []
    if fmt.quoting:
        try:
            return [f.strip() for f in next(csv.reader([line], delimiter=fmt.separator))]
        except csv.Error as exc:
            raise DataError(f"{raw.name}, line 1: {exc}") from None
    return [f.strip() for f in line.split(fmt.separator)]


def read_columns(raw: RawFile, fmt: TextFormat, names: list[str], *, header: bool = False,
                 keep: list[str] | None = None, labels: tuple[str, ...] = ()) -> "Columns":
    """Every line of ``raw`` split into the fields ``names`` (all must be present on every line).

    header: skip the first line. keep: the columns to keep (default all). labels: columns of ids,
    read dictionary-encoded (one copy of each distinct string).
    """
    from recdistill.data.values import Columns

    data = to_utf8(raw, fmt.encoding)
    sep = fmt.separator
    if len(sep) > 1:
        if _UNIT_SEPARATOR in data:
            raise DataError(f"{raw.name} contains the control byte 0x1f, which the {separator_name(sep)} reader "
                            "uses internally; remove it from the file")
        data = data.replace(sep.encode(), _UNIT_SEPARATOR)
    if not data.strip():
        raise DataError(f"{raw.name} is empty; expected " + ("a header line" if header else f"lines of {len(names)} "
                        f"{separator_name(sep)}-separated fields ({', '.join(names)})"))
    if header and not data.partition(b"\n")[2].strip():
        raise DataError(f"{raw.name} has a header but no data lines")
    keep = keep or names
    types = {n: pa.dictionary(pa.int32(), pa.string()) if n in labels else pa.string() for n in keep}
    options = dict(
        read_options=pcsv.ReadOptions(column_names=names, skip_rows=1 if header else 0, block_size=8 << 20),
        parse_options=pcsv.ParseOptions(delimiter=_one_char(sep),
                                        quote_char='"' if fmt.quoting else False, newlines_in_values=fmt.quoting,
                                        ignore_empty_lines=True),
        convert_options=pcsv.ConvertOptions(column_types=types, include_columns=keep, strings_can_be_null=False,
                                            quoted_strings_can_be_null=False))
    progress = ReadProgress(raw.name, len(data), fmt.progress_interval_s)
    try:
        table = pcsv.read_csv(ProgressStream(data, progress), memory_pool=_pool(), **options)
    except pa.ArrowException as exc:
        raise _locate(raw.name, data, fmt, names, header) or DataError(f"{raw.name}: {exc}") from None
    finally:
        progress.close()
    return Columns(raw.name, table, line_numbers(data, table.num_rows, 1 if header else 0, fmt))


def _pool() -> pa.MemoryPool:
    """jemalloc where pyarrow has it: it hands freed read buffers back to the system sooner than the
    default mimalloc, which lowered the peak memory of a 3 M-row prepare by about 200 MB here."""
    try:
        return pa.jemalloc_memory_pool()
    except NotImplementedError:
        return pa.default_memory_pool()


def line_numbers(data: bytes, rows: int, skip: int, fmt: TextFormat) -> np.ndarray:
    """The line (1-based) of each of ``rows`` records, the first ``skip`` lines being a header."""
    lines = data.count(b"\n") + (0 if data.endswith(b"\n") else 1)
    if lines - skip == rows:  # no blank lines and no line breaks inside fields: line = row + header
        return np.arange(skip + 1, skip + 1 + rows, dtype=np.int64)
    if not fmt.quoting:
        starts, ends = _line_bounds(data)
        blank = (ends == starts) | ((ends - starts == 1) & (np.frombuffer(data, np.uint8)[np.minimum(
            starts, len(data) - 1)] == 13))
        numbers = np.flatnonzero(~blank)[skip:] + 1
        if len(numbers) == rows:
            return numbers.astype(np.int64)
    reader = csv.reader(io.StringIO(data.decode("utf-8"), newline=""), delimiter=_one_char(fmt.separator))
    numbers = [reader.line_num for fields in reader if fields and not (len(fields) == 1 and not fields[0])][skip:]
    return np.asarray(numbers[:rows], dtype=np.int64) if len(numbers) >= rows else np.arange(skip + 1, skip + 1 + rows)


def _one_char(sep: str) -> str:
    return sep if len(sep) == 1 else _UNIT_SEPARATOR.decode()


def _line_bounds(data: bytes) -> tuple[np.ndarray, np.ndarray]:
    newlines = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == 10)
    starts, ends = np.r_[0, newlines + 1], np.r_[newlines, len(data)]
    if starts[-1] == len(data):  # the file ends with a newline: no last line
        starts, ends = starts[:-1], ends[:-1]
    return starts, ends


def _locate(name: str, data: bytes, fmt: TextFormat, names: list[str], header: bool) -> DataError | None:
    """The first line pyarrow could not split into ``names``, as a DataError (None if none is found)."""
    n, sep = len(names), fmt.separator
    if fmt.quoting:
        reader = csv.reader(io.StringIO(data.decode("utf-8"), newline=""), delimiter=sep)
        try:
            for fields in reader:
                if reader.line_num == 1 and header or not fields or (len(fields) == 1 and not fields[0].strip()):
                    continue
                if len(fields) != n:
                    return DataError(f"{name}, line {reader.line_num}: expected {n} fields separated by "
                                     f"{separator_name(sep)} as in the header, found {len(fields)}")
        except csv.Error as exc:
            return DataError(f"{name}, line {reader.line_num}: {exc}")
        return None
    starts, ends = _line_bounds(data)
    one = _one_char(sep).encode()[0]
    marks = np.flatnonzero(np.frombuffer(data, dtype=np.uint8) == one)
    fields = np.searchsorted(marks, ends) - np.searchsorted(marks, starts) + 1
    text_blank = (ends - starts == 0) | ((ends - starts == 1) & (fields == 1))
    bad = np.flatnonzero((fields != n) & ~text_blank)
    bad = bad[bad >= (1 if header else 0)]
    if not len(bad):
        return None
    row = int(bad[0])
    line = data[starts[row]:ends[row]].decode("utf-8", "replace").rstrip("\r").replace(_UNIT_SEPARATOR.decode(), sep)
    return DataError(f"{name}, line {row + 1}: expected {n} {separator_name(sep)}-separated fields "
                     f"({', '.join(names)}), found {int(fields[row])}: {line[:100]!r}" + separator_hint(line, sep, n))
