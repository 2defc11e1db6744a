"""Turning a file's bytes into UTF-8 for the columnar reader, with errors that name the line.

pyarrow reads UTF-8 only and reports a bad byte without its line, so the checks are done here: a
UTF-16 or binary file, a wrong ``dataset.encoding``, and UTF-8 text read as latin-1 (which would
decode without error and garble every accented title) are each reported with the line they break on.
Pure ASCII, the common case, is passed through without a copy.
"""

from __future__ import annotations

import codecs

from recdistill.data.files import RawFile
from recdistill.errors import DataError

_SINGLE_BYTE = {"latin-1", "latin1", "iso-8859-1", "iso8859-1", "cp1252", "windows-1252"}
_UTF8 = {"utf-8", "utf8"}


def _line_of(data: bytes, offset: int) -> int:
    return data.count(b"\n", 0, offset) + 1


def _reject_utf8_as_single_byte(name: str, data: bytes, encoding: str) -> None:
    """Non-ASCII text that is valid UTF-8 is almost never real latin-1: report it."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return  # genuinely single-byte text
    first = next(i for i, byte in enumerate(data) if byte > 127)
    raise DataError(f"{name}, line {_line_of(data, first)}: expected {encoding} text (as GroupLens ships MovieLens), "
                    f"but the file is UTF-8 ({data[first:first + 4]!r}); set dataset.encoding=utf-8")


def to_utf8(raw: RawFile, encoding: str) -> bytes:
    """The file's text as UTF-8 bytes (byte-order mark removed); a DataError naming the line otherwise."""
    try:
        codecs.lookup(encoding)
    except LookupError:
        raise DataError(f"unknown encoding {encoding!r} for {raw.name}; use e.g. utf-8 or latin-1") from None
    data = raw.data
    if data.startswith((b"\xff\xfe", b"\xfe\xff")) or b"\x00" in data[:4096]:
        raise DataError(f"{raw.name}: looks UTF-16/binary (NUL bytes or a UTF-16 byte-order mark); "
                        f"expected a {encoding} text file. Re-save it as UTF-8 or latin-1 text")
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if data.isascii():
        return data
    normal = encoding.lower().replace("_", "-")
    if normal in _SINGLE_BYTE:
        _reject_utf8_as_single_byte(raw.name, data, encoding)
    try:
        text = data.decode(encoding)
    except UnicodeDecodeError as exc:
        raise DataError(
            f"{raw.name}, line {_line_of(data, exc.start)}: bytes {data[exc.start:exc.end + 3]!r} are not valid "
            f"{encoding}; set dataset.encoding to the file's encoding (MovieLens .dat files are latin-1)"
        ) from None
    return data if normal in _UTF8 else text.encode("utf-8")
