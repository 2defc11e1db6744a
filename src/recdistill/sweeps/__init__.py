"""Efficiency sweeps: every knob measured in its own process, tabled, plotted, and the best written back.

``grid`` (what runs), ``validate`` (checked before anything runs), ``trial`` (one process), ``records``
(results.jsonl and table rows), ``tables`` / ``plots`` (markdown, CSV, PNG), ``apply_best`` and
``applied`` (the best setting as a config file later runs pick up), ``sweep`` and ``commands``.
"""
