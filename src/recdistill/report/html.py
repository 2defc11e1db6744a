"""The report's markdown as a standalone HTML page.

We convert with Python-Markdown (``markdown``), a long-maintained library that tensorboard (one of our
dependencies) already installs; its ``tables`` extension handles the pipe tables we write. Writing our
own converter would mean re-implementing table and escaping rules for no gain.
"""

from __future__ import annotations

import html

import markdown

STYLE = """
body { font-family: -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1100px;
       margin: 2em auto; padding: 0 1em; color: #222; line-height: 1.45; }
table { border-collapse: collapse; margin: 0.8em 0; font-size: 0.9em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; }
th { background: #f3f3f3; }
tr:nth-child(even) td { background: #fafafa; }
code { background: #f3f3f3; padding: 0 0.2em; border-radius: 3px; }
img { max-width: 100%; }
h1, h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em; }
"""


def markdown_to_html(text: str, title: str) -> str:
    body = markdown.markdown(text, extensions=["tables", "fenced_code", "sane_lists"], output_format="html")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f"<title>{html.escape(title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n{body}\n</body>\n</html>\n"
    )
