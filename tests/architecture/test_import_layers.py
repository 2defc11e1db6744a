"""Every import inside src/recdistill follows the layer table of docs/architecture.md, and no two top-level
packages import each other (directly or through others).

The table is read from the document itself (the rows between the ``layers-table`` markers), so the document
and the code cannot drift apart: a package must appear in it, and may import only packages of lower layers.
Imports inside functions count too."""

from __future__ import annotations

import ast
import re
from collections import defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "src" / "recdistill"
DOC = ROOT / "docs" / "architecture.md"


def layer_table() -> dict[str, int]:
    """package -> layer number, from the rows ``| <n> | `pkg`, `pkg` | ... |`` between the markers."""
    text = DOC.read_text()
    block = text.split("<!-- layers-table -->")[1]
    layers = {}
    for row in block.splitlines():
        match = re.match(r"\|\s*(\d+)\s*\|([^|]*)\|", row)
        if match:
            for name in re.findall(r"`([\w.]+)`", match.group(2)):
                layers[name.removesuffix(".py").rstrip("/")] = int(match.group(1))
    assert layers, "docs/architecture.md has no layer table between <!-- layers-table --> markers"
    return layers


def top_level(parts: list[str]) -> str:
    """The top-level package (or module) of recdistill a dotted path below it names."""
    if not parts:
        return "__init__"
    first = parts[0]
    if (PACKAGE / first).is_dir() or (PACKAGE / f"{first}.py").is_file():
        return first
    return "__init__"  # a name defined in recdistill/__init__.py, such as __version__


def imports_of(source: str, rel: Path) -> set[str]:
    """Top-level recdistill packages that the file ``rel`` (relative to src/recdistill) imports, anywhere in it."""
    found = set()
    for node in ast.walk(ast.parse(source, str(rel))):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("recdistill."):
                    found.add(top_level(alias.name.split(".")[1:]))
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the file's own package
                base = list(rel.parts[:-1])[: len(rel.parts) - node.level]
                parts = base + (node.module.split(".") if node.module else [])
            elif node.module and (node.module == "recdistill" or node.module.startswith("recdistill.")):
                parts = node.module.split(".")[1:]
            else:
                continue
            if parts:
                found.add(top_level(parts))
            else:  # from recdistill import x, y
                found.update(top_level([alias.name]) for alias in node.names)
    return found


def package_graph() -> dict[str, dict[str, list[str]]]:
    """package -> imported package -> the files that import it."""
    graph: dict[str, dict[str, list[str]]] = defaultdict(lambda: defaultdict(list))
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE)
        own = rel.parts[0] if len(rel.parts) > 1 else rel.stem
        for other in imports_of(path.read_text(), rel) - {own}:
            graph[own][other].append(str(rel))
    return graph


def test_every_package_is_in_the_layer_table():
    layers = layer_table()
    packages = {p.name for p in PACKAGE.iterdir() if p.is_dir() and (p / "__init__.py").exists()}
    modules = {p.stem for p in PACKAGE.glob("*.py")}
    missing = sorted((packages | modules) - set(layers))
    assert not missing, f"add these to the layer table of docs/architecture.md: {missing}"


def test_imports_only_go_to_lower_layers():
    layers = layer_table()
    wrong = [f"{pkg} (layer {layers[pkg]}) imports {other} (layer {layers.get(other)}) in {files}"
             for pkg, targets in package_graph().items() for other, files in targets.items()
             if layers.get(other, 99) >= layers.get(pkg, -1)]
    assert not wrong, "imports against the layer table of docs/architecture.md:\n" + "\n".join(wrong)


def test_no_import_loop_between_top_level_packages():
    graph = {pkg: set(targets) for pkg, targets in package_graph().items()}

    def reach(start):
        seen, todo = set(), [start]
        while todo:
            for nxt in graph.get(todo.pop(), ()):
                if nxt not in seen:
                    seen.add(nxt)
                    todo.append(nxt)
        return seen

    loops = sorted(pkg for pkg in graph if pkg in reach(pkg))
    assert not loops, f"these packages reach themselves through their imports: {loops}"


def test_the_walk_finds_function_level_relative_and_package_imports():
    # If the walk missed these forms, the tests above would prove nothing.
    source = ("def f():\n    from recdistill.recipes.student import train_student\n"
              "from recdistill import errors\nfrom ...teacher import llm\nimport recdistill.data.prepared\n")
    assert imports_of(source, Path("engine/sub/probe.py")) == {"recipes", "errors", "teacher", "data"}
