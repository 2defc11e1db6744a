"""``recdistill report RUN [RUN...] [--out DIR]``."""

from __future__ import annotations

from recdistill.report.page import render_report


def report(args) -> int:
    files = render_report(args.runs, args.out)
    print(f"report: {files.markdown}")
    print(f"        {files.html}")
    for image in files.images:
        print(f"        {image}")
    return 0
