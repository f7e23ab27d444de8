"""No package has an import cycle among its own modules.

The graph counts every import of a sibling module: at the top, inside
functions and under ``if TYPE_CHECKING:`` alike, since a cycle hidden in a
function or behind a type-checking guard still ties two modules' designs
together.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = sorted(p for p in (ROOT / "packages").glob("ori-*/src/ori/*") if p.is_dir())


def module_imports(package: Path) -> dict[str, set[str]]:
    """Module name -> the names of the sibling modules it imports (any way)."""
    name = f"ori.{package.name}"
    modules = {
        f"{name}.{path.stem}" if path.stem != "__init__" else name: path
        for path in package.glob("*.py")
    }
    graph: dict[str, set[str]] = {}
    for module, path in modules.items():
        is_package = path.stem == "__init__"
        here = module if is_package else module.rsplit(".", 1)[0]
        found: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            targets: list[str] = []
            if isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = here.split(".")[: len(here.split(".")) - node.level + 1]
                    base = ".".join([*parts, base] if base else parts)
                # "from . import _x" needs the module _x, not the package's
                # __init__; a name that is no module comes from the package.
                submodules = [f"{base}.{alias.name}" for alias in node.names]
                targets = [t for t in submodules if t in modules]
                if len(targets) < len(submodules):
                    targets.append(base)
            elif isinstance(node, ast.Import):
                targets = [alias.name for alias in node.names]
            found.update(t for t in targets if t in modules and t != module)
        graph[module] = found
    return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One cycle of *graph* as a path that ends where it starts, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state:
                cycle = visit(target)
                if cycle:
                    return cycle
        path.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state:
            cycle = visit(node)
            if cycle:
                return cycle
    return None


def test_the_cycle_finder_finds_cycles() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set(), "c": {"a", "b"}}) is None


def test_the_graph_sees_every_kind_of_import(tmp_path: Path) -> None:
    package = tmp_path / "demo"
    package.mkdir()
    (package / "__init__.py").write_text("from ._a import x\n")
    (package / "_a.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ._b import y\nx = 1\n"
    )
    (package / "_b.py").write_text(
        "def f():\n    from . import _a\n    import ori.demo._c\n    from . import x\n"
    )
    (package / "_c.py").write_text("")
    graph = module_imports(package)
    assert graph == {
        "ori.demo": {"ori.demo._a"},
        "ori.demo._a": {"ori.demo._b"},
        "ori.demo._b": {"ori.demo._a", "ori.demo._c", "ori.demo"},
        "ori.demo._c": set(),
    }


@pytest.mark.parametrize("package", PACKAGES, ids=[p.name for p in PACKAGES])
def test_no_import_cycle(package: Path) -> None:
    cycle = find_cycle(module_imports(package))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])
