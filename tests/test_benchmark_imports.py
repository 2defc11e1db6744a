"""Every `from recdistill... import name` in the benchmark scripts names a module and an attribute that
exist. The scripts import inside their functions (so `--help` stays fast), which hides a moved module until
someone runs an hour-long benchmark; the recipes redesign broke distill_llm_teacher.py exactly that way."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"
SCRIPTS = sorted(BENCHMARKS.rglob("*.py"))


def _recdistill_imports(path: Path) -> list[tuple[str, str, int]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.ImportFrom) and node.level == 0 and (node.module or "").startswith("recdistill"):
            found += [(node.module, alias.name, node.lineno) for alias in node.names]
        elif isinstance(node, ast.Import):
            found += [(alias.name, "", node.lineno) for alias in node.names if alias.name.startswith("recdistill")]
    return found


def test_the_benchmarks_import_recdistill():
    assert len(SCRIPTS) > 10 and sum(len(_recdistill_imports(p)) for p in SCRIPTS) > 20


@pytest.mark.parametrize("script", SCRIPTS, ids=lambda p: str(p.relative_to(BENCHMARKS)))
def test_every_recdistill_import_of_a_benchmark_resolves(script):
    missing = []
    for module, name, line in _recdistill_imports(script):
        try:
            imported = importlib.import_module(module)
        except ImportError as e:
            missing.append(f"line {line}: module {module} ({e})")
            continue
        if name and not hasattr(imported, name):
            try:
                importlib.import_module(f"{module}.{name}")   # a submodule imported by name
            except ImportError:
                missing.append(f"line {line}: {module} has no {name}")
    assert not missing, f"{script.name}: " + "; ".join(missing)
