"""Evaluation protocols over candidate sets (LLaRA / iLoRA's): the one place candidates are drawn, the
parser of generated answers, the teacher and the student scored on the same sets, and the average over
seeded draws with 95 % intervals."""
