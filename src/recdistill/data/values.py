"""Columns read as text, converted to ids, whole numbers and numbers with errors that name the line.

Conversions are pyarrow casts over whole columns. A cast either succeeds for every value or fails;
only when it fails is the column searched, block by block and then value by value, for the first bad
value, so the error can name its line. Ids are labels: a MovieLens id must be a whole number that fits
64 bits (else an error, never a wrapped or rounded value), other ids stay the text they are.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from recdistill.errors import DataError

_BLOCK = 65_536
_INT64 = (-(2 ** 63), 2 ** 63 - 1)


@dataclass
class Columns:
    """Text columns of one file (a pyarrow table) and each row's line number in that file."""

    name: str
    table: pa.Table
    lines: np.ndarray

    def __len__(self) -> int:
        return self.table.num_rows

    def __contains__(self, key: str) -> bool:
        return key in self.table.column_names

    def error(self, row: int, message: str) -> DataError:
        return DataError(f"{self.name}, line {int(self.lines[row])}: {message}")

    def text(self, key: str) -> list[str]:
        """Column ``key`` as Python strings (for small files: item titles)."""
        return [str(v) for v in self.table.column(key).cast(pa.string()).to_pylist()]

    def strings(self, key: str) -> pa.ChunkedArray:
        return self.table.column(key).cast(pa.string())

    def integers(self, key: str, what: str) -> np.ndarray:
        """Column ``key`` as int64: every value must be a whole number (digits, optional sign) in range."""
        values = self._cast(key, pa.int64(), what, _check_integer)
        return values.to_numpy().astype(np.int64, copy=False)

    def numbers(self, key: str, what: str) -> np.ndarray:
        """Column ``key`` as finite float64."""
        values = self._cast(key, pa.float64(), what, _check_number).to_numpy()
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            row = int(bad[0])
            raise self.error(row, f"expected a number for {what} ({key}), found {self._value(key, row)!r}")
        return values

    def floored(self, key: str, what: str) -> np.ndarray:
        """Column ``key`` as numbers rounded down to int64 (timestamps with fractions of a second)."""
        values = np.floor(self.numbers(key, what))
        bad = np.flatnonzero((values < _INT64[0]) | (values >= 2.0 ** 63))
        if len(bad):
            row = int(bad[0])
            raise self.error(row, f"{what} ({key}) {self._value(key, row)!r} does not fit a 64-bit integer")
        return values.astype(np.int64)

    def labels(self, key: str) -> pd.Categorical:
        """Column ``key`` as ids kept as text (surrounding spaces removed), one category per distinct id."""
        codes, dictionary = self._dictionary(key)
        names = pd.Index(pc.utf8_trim_whitespace(dictionary).to_pylist(), dtype=object)
        return _merged(codes, names)

    def integer_labels(self, key: str, what: str) -> pd.Categorical:
        """Column ``key`` as whole-number ids (int64 categories): "007" and "7" are one id; an id that is
        not a whole number or does not fit 64 bits is an error naming its first line."""
        codes, dictionary = self._dictionary(key)
        trimmed = pc.utf8_trim_whitespace(dictionary)
        try:
            values = pc.cast(trimmed, pa.int64()).to_numpy()
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
            bad = np.array([_check_integer(v) is not None for v in trimmed.to_pylist()])
            rows = np.flatnonzero(bad[codes])
            if not len(rows):
                raise DataError(f"{self.name}: column {key} ({what}) could not be read as whole numbers") from None
            row = int(rows[0])
            problem = _check_integer(str(trimmed[int(codes[row])].as_py()))
            raise self.error(row, f"{problem.format(what=what, key=key)}, found {self._value(key, row)!r}"
                             + (_LABEL_HINT if "64-bit" in problem else "")) from None
        return _merged(codes, pd.Index(values))

    def _dictionary(self, key: str) -> tuple[np.ndarray, pa.Array]:
        """(code per row, the distinct strings) of column ``key``."""
        column = self.table.column(key)
        if not pa.types.is_dictionary(column.type):
            column = column.dictionary_encode()
        if column.num_chunks == 0:
            return np.zeros(0, dtype=np.int32), pa.array([], pa.string())
        combined = column.unify_dictionaries().combine_chunks()
        return combined.indices.to_numpy(zero_copy_only=False).astype(np.int32, copy=False), combined.dictionary

    # --- locating the first bad value -----------------------------------------------------------------

    def _value(self, key: str, row: int) -> str:
        value = self.table.column(key)[row]
        return str(value.as_py() if not isinstance(value, pa.DictionaryScalar) else value.value.as_py())

    def _cast(self, key: str, target: pa.DataType, what: str, check) -> pa.ChunkedArray:
        column = self.strings(key)
        for attempt in (column, None):
            try:
                return pc.cast(attempt if attempt is not None else pc.utf8_trim_whitespace(column), target)
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                continue
        raise self._first_bad(key, column, target, what, check)

    def _first_bad(self, key: str, column: pa.ChunkedArray, target: pa.DataType, what: str, check) -> DataError:
        trimmed = pc.utf8_trim_whitespace(column)
        for start in range(0, len(trimmed), _BLOCK):
            block = trimmed.slice(start, _BLOCK)
            try:
                pc.cast(block, target)
                continue
            except (pa.ArrowInvalid, pa.ArrowNotImplementedError):
                pass
            for offset, value in enumerate(block.to_pylist()):
                problem = check(value)
                if problem:
                    return self.error(start + offset, f"{problem.format(what=what, key=key)}, found "
                                                      f"{self._value(key, start + offset)!r}"
                                      + (_LABEL_HINT if "64-bit" in problem and "id" in what else ""))
        return DataError(f"{self.name}: column {key} ({what}) could not be read as {target}")


def _merged(codes: np.ndarray, names: pd.Index) -> pd.Categorical:
    """A categorical from codes into ``names``, where two names may be one id once normalised."""
    remap, categories = pd.factorize(names)
    return pd.Categorical.from_codes(remap[codes] if len(codes) else codes, categories=pd.Index(categories))


_LABEL_HINT = ("; ids are labels and are never rounded or wrapped: if this id is meant, use dataset=csv, "
               "which keeps ids as text")


def _check_number(value: str) -> str | None:
    try:
        float(value)
        return None
    except ValueError:
        return "expected a number for {what} ({key})"


def _check_integer(value: str) -> str | None:
    try:
        number = int(value)
    except ValueError:
        return _check_number(value) or "expected a whole number for {what} ({key})"
    if not _INT64[0] <= number <= _INT64[1]:
        return "{what} ({key}) does not fit a 64-bit integer"
    return None
