"""Progress on long reads: a plain line at a steady interval in a log file, a redrawn line on a terminal."""

from __future__ import annotations

import io

from recdistill.data.columnar import TextFormat, read_columns
from recdistill.data.files import RawFile
from recdistill.engine.progress import ReadProgress


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_log_file_gets_whole_lines_and_short_reads_print_nothing():
    log = io.StringIO()
    progress = ReadProgress("big.csv", 4_000_000, interval_s=0.0, stream=log)
    for done in (1_000_000, 2_000_000, 4_000_000):
        progress.update(done)
    progress.close()
    lines = log.getvalue().splitlines()
    assert len(lines) == 3 and "\r" not in log.getvalue()
    assert lines[0].startswith("reading big.csv:  25.0% (1 of 4 MB") and "100.0%" in lines[-1]
    quiet = io.StringIO()
    ReadProgress("small.csv", 10, interval_s=60.0, stream=quiet).update(10)
    assert quiet.getvalue() == ""


def test_terminal_gets_one_redrawn_line():
    term = _Terminal()
    progress = ReadProgress("big.csv", 100, interval_s=0.0, stream=term)
    progress.update(50)
    progress.update(100)
    progress.close()
    assert term.getvalue().count("\r") == 2 and term.getvalue().endswith("\n")


def test_reader_reports_progress(capsys):
    data = "".join(f"{u}\t{u % 7}\t3\t{u}\n" for u in range(50_000)).encode()
    columns = read_columns(RawFile("u.data", data), TextFormat("\t", progress_interval_s=0.0), ["u", "i", "r", "t"])
    assert len(columns) == 50_000
    assert "reading u.data: 100.0%" in capsys.readouterr().err
