"""The import graph of pipeline/ and components/: no cycle, and each layer imports only downwards.

components/qa (pure QA logic) imports nothing else of ours; components/ never imports pipeline/.
Imports inside functions count too: they are the ones that hide a cycle.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGES = ("components", "pipeline")


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


MODULES = {module_name(p): p for package in PACKAGES for p in sorted((REPO / package).rglob("*.py"))}


def imports(name: str) -> set[str]:
    """The modules of ours that `name` imports, anywhere in its body."""
    found = set()
    for node in ast.walk(ast.parse(MODULES[name].read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module)  # `from pipeline import kfp_client` imports the module too:
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {m for m in found if m in MODULES and m != name}


GRAPH = {name: imports(name) for name in MODULES}


def test_the_graph_sees_the_modules():
    assert {"pipeline.__main__", "pipeline.cli_options", "components.qa.training"} <= set(GRAPH)
    assert "pipeline.cli_options" in GRAPH["pipeline.cluster_cli"]
    assert "components.launch.topology" in GRAPH["components.fine_tune"]  # inside the component body
    assert "components.qa.errors" in GRAPH["pipeline.settings"]


def test_no_import_cycle():
    state: dict[str, str] = {}  # "open" while on the current path, "done" after

    def visit(name: str, path: list[str]) -> None:
        state[name] = "open"
        for target in sorted(GRAPH[name]):
            if state.get(target) == "open":
                cycle = path[path.index(target):] + [target]
                pytest.fail("import cycle: " + " -> ".join(cycle))
            if target not in state:
                visit(target, [*path, target])
        state[name] = "done"

    for name in sorted(GRAPH):
        if name not in state:
            visit(name, [name])


def test_components_never_import_the_pipeline_layer():
    upward = {name: sorted(t for t in targets if t.split(".")[0] == "pipeline")
              for name, targets in GRAPH.items() if name.startswith("components")}
    assert {name: t for name, t in upward.items() if t} == {}


def test_components_qa_imports_nothing_above_itself():
    outside = {name: sorted(t for t in targets if not (t == "components.qa" or t.startswith("components.qa.")))
               for name, targets in GRAPH.items() if name == "components.qa" or name.startswith("components.qa.")}
    assert {name: t for name, t in outside.items() if t} == {}


@pytest.mark.parametrize("name", sorted(n for n in MODULES if n.startswith("pipeline")))
def test_every_pipeline_module_imports(name):
    importlib.import_module(name)
