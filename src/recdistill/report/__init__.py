"""Run and comparison pages: markdown plus the same page as HTML, with training curves as PNG.

``render_report(paths, out)`` takes run folders (or one pipeline folder) and writes ``report.md``,
``report.html`` and ``curves-*.png`` into ``out``. ``recdistill report`` is its command.
"""

from recdistill.report.page import render_report

__all__ = ["render_report"]
