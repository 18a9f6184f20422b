"""The tree reads as the pipeline: imports point down it, and no module imports itself back.

Every ``trtforge`` import counts, lazy ones inside functions too (they decide what a stage depends
on); only ``if TYPE_CHECKING:`` blocks are left out, since they never run.
"""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[1] / "src" / "trtforge"

# Stage order, low to high: a module may import from its own stage or any lower one.
LAYERS = [
    {"errors", "_files", "_host", "config", "numbers"},
    {"data", "graph", "converters"},
    {"precision"},
    {"backends", "engine"},
    {"build"},
    {"bench", "run", "compare"},
    {"serve"},
    {"deploy"},
    {"cli", "__main__"},
]


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC.parent).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _modules() -> dict[str, Path]:
    return {_module_name(p): p for p in SRC.rglob("*.py")}


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path, known: set[str]) -> set[str]:
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(a.name for a in node.names if a.name.startswith("trtforge"))
        elif isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("trtforge"):
            for alias in node.names:  # `from trtforge.x import y` where y is a module
                sub = f"{node.module}.{alias.name}"
                found.add(sub if sub in known else node.module)
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(ast.parse(path.read_text()))
    return {m for m in found if m != "trtforge"}  # the root holds __version__ and the lazy API


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(path, set(modules)) - {name} for name, path in modules.items()}


def _stage(module: str) -> int | None:
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else parts[0]
    for rank, layer in enumerate(LAYERS):
        if top in layer:
            return rank
    return None


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []

    def connect(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in graph:
        if v not in index:
            connect(v)
    return out


def test_no_import_cycles() -> None:
    assert _cycles(_graph()) == []


def test_every_module_has_a_stage() -> None:
    assert [m for m in _modules() if m != "trtforge" and _stage(m) is None] == []


def test_imports_point_down_the_pipeline() -> None:
    upward = sorted(
        f"{a} -> {b}"
        for a, targets in _graph().items()
        for b in targets
        if a != "trtforge" and (_stage(b) or 0) > (_stage(a) or 0)
    )
    assert upward == []


def test_the_checker_sees_a_cycle_and_an_upward_import() -> None:
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    assert _stage("trtforge.cli.build") > _stage("trtforge.build") > _stage("trtforge.precision.apply")
