"""The package layout: every module imports, dependencies point one way, no import cycles.

Imports are read from the source (function-local ones included), so a lazy import cannot hide a
dependency that points the wrong way.
"""
from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "openbert"

# Lower layers never import higher ones; packages of one layer do not import each other.
LAYERS = [
    {"errors"},
    {"io"},
    {"config", "tokenization"},
    {"model"},
    {"checkpoints", "training"},
    {"tasks"},
    {"serve"},  # pipelines and the HTTP server, run by `openbert serve` / `openbert predict`
    {"commands"},
    {"cli"},
    {"__init__", "__main__"},  # the public API and `python -m openbert`
]
LAYER_OF = {name: i for i, names in enumerate(LAYERS) for name in names}
MAX_TOP_LEVEL_MODULES = 10


def _modules() -> dict[str, Path]:
    """{dotted module name: file} for every module of the package."""
    out = {}
    for path in SRC.rglob("*.py"):
        parts = path.relative_to(SRC.parent).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


MODULES = _modules()


def _imports(name: str, path: Path) -> set[str]:
    """The openbert modules that ``name`` imports anywhere in its source."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[:len(package.split(".")) - node.level + 1]
                module = ".".join(base + ([node.module] if node.module else []))
            else:
                module = node.module or ""
            # `from pkg import submodule` imports the submodule
            targets = [f"{module}.{a.name}" if f"{module}.{a.name}" in MODULES else module
                       for a in node.names]
        else:
            continue
        found.update(t for t in targets if t == "openbert" or t.startswith("openbert."))
    return found - {name}


GRAPH = {name: _imports(name, path) for name, path in MODULES.items()}


def _area(module: str) -> str:
    """The top-level package (or module) a module belongs to: ``openbert.tasks.squad.data`` -> tasks."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


@pytest.mark.parametrize("name", sorted(MODULES))
def test_every_module_imports(name):
    if name != "openbert.__main__":  # running it runs the CLI
        importlib.import_module(name)


def test_every_package_has_a_layer():
    areas = {_area(m) for m in MODULES}
    assert areas <= set(LAYER_OF), f"packages without a layer: {sorted(areas - set(LAYER_OF))}"


def test_dependencies_point_down():
    wrong = []
    for name, targets in GRAPH.items():
        for target in targets:
            a, b = _area(name), _area(target)
            if a == b or target == "openbert":
                continue
            if LAYER_OF[b] >= LAYER_OF[a]:
                wrong.append(f"{name} -> {target}")
    assert not wrong, "imports against the layering: " + ", ".join(sorted(wrong))


def test_tasks_do_not_import_each_other():
    wrong = []
    for name, targets in GRAPH.items():
        parts = name.split(".")
        if len(parts) < 4 or parts[1] != "tasks":
            continue
        for target in targets:
            t = target.split(".")
            if len(t) >= 4 and t[1] == "tasks" and t[2] != parts[2]:
                wrong.append(f"{name} -> {target}")
    assert not wrong, "a task reaches into another (share it through tasks/common.py): " + ", ".join(wrong)


def test_no_import_cycles():
    """No cycle among modules, counting a package's __init__ as imported by its modules' importers."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(GRAPH.get(node, ())):
            if nxt == "openbert":  # every module runs openbert/__init__ first; it is the top
                continue
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if state.get(nxt) is None:
                visit(nxt)
        stack.pop()
        state[node] = 2

    for name in sorted(GRAPH):
        if state.get(name) is None:
            visit(name)


def test_few_top_level_modules():
    top = sorted(p.name for p in SRC.glob("*.py"))
    assert len(top) <= MAX_TOP_LEVEL_MODULES, top
