"""The package's imports form no circle and do not run up the layers: every ``import`` of an
emolib module, at the top of a file or inside a function (where a circle hides), is an edge of
the graph walked here."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "emolib"
# the foundation every stage builds on: settings, names, label sets, prompt templates and the
# machine's facts; none of it may import a stage (data, restore, train, vlm, prompts, ...)
FOUNDATION = {"emolib.schema", "emolib.registry", "emolib.paths", "emolib.labels", "emolib.templates",
              "emolib.machine", "emolib.config"}


def module_name(path: Path, package: Path) -> str:
    parts = path.relative_to(package.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph(package: Path = PACKAGE) -> dict[str, set[str]]:
    """Module -> the emolib modules it imports (``from emolib.a import b`` is ``emolib.a.b``
    when that is a module, else ``emolib.a``)."""
    modules = {module_name(p, package): p for p in package.rglob("*.py")}
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, path in modules.items():
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("emolib"):
                graph[name] |= {f"{node.module}.{a.name}" if f"{node.module}.{a.name}" in modules else node.module
                                for a in node.names}
            elif isinstance(node, ast.Import):
                graph[name] |= {a.name for a in node.names if a.name.startswith("emolib")}
    return graph


def find_circle(graph: dict[str, set[str]]) -> list[str]:
    """One import circle of ``graph`` as [a, b, ..., a], or [] if there is none (depth-first)."""
    state: dict[str, str] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str]:
        state[node], found = "open", []
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                return stack[stack.index(nxt):] + [nxt]
            if nxt not in state and (found := visit(nxt)):
                return found
        state[node] = "done"
        stack.pop()
        return found

    for start in sorted(graph):
        if start not in state and (circle := visit(start)):
            return circle
    return []


def test_emolib_has_no_import_circle():
    assert find_circle(import_graph()) == []


def in_foundation(module: str) -> bool:
    return module in FOUNDATION or module.startswith("emolib.config.")


def test_the_foundation_imports_no_stage():
    graph = import_graph()
    foundation = sorted(m for m in graph if in_foundation(m))
    assert "emolib.config.profile" in foundation
    for name in foundation:
        above = sorted(m for m in graph[name] if not in_foundation(m))
        assert above == [], f"{name} imports {above} above it"


def test_the_walker_finds_a_circle_hidden_in_a_function(tmp_path):
    package = tmp_path / "emolib"
    (package / "vlm").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    (package / "vlm" / "__init__.py").write_text("")
    (package / "vlm" / "base.py").write_text("def load():\n    from emolib.vlm.clip import Clip\n")
    (package / "vlm" / "clip.py").write_text("from emolib.vlm import base\n")
    graph = import_graph(package)
    assert graph["emolib.vlm.clip"] == {"emolib.vlm.base"}
    assert find_circle(graph) == ["emolib.vlm.base", "emolib.vlm.clip", "emolib.vlm.base"]
    (package / "vlm" / "clip.py").write_text("from emolib.vlm.types import Spec\n")
    assert find_circle(import_graph(package)) == []


@pytest.mark.parametrize("backend", ["clip", "hf", "openai", "recorded"])
def test_a_backend_joins_in_one_registry(backend):
    """Every backend is one entry of ``vlm.backends.LOADERS``; its module imports the shared types,
    never the registry."""
    from emolib.vlm.backends import BACKEND_NAMES, LOADERS, parse_spec

    assert backend in LOADERS and BACKEND_NAMES == tuple(LOADERS)
    module = {"openai": "openai_api"}.get(backend, backend)
    assert "emolib.vlm.backends" not in import_graph()[f"emolib.vlm.{module}"]
    assert parse_spec(f"{backend}:m").backend == backend
    with pytest.raises(ValueError, match=r"backend in \('clip', 'hf', 'openai', 'recorded'\)"):
        parse_spec("vllm:m")
