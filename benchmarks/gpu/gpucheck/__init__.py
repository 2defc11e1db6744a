"""The parts of ``benchmarks/gpu/gpu_check.py``: shared measuring and model building (``common``), the arms
(``teacher_arms``, ``qlora_arms``, ``other_arms``), the verdicts and the table (``report``)."""
