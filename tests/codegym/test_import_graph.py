"""The package's import graph: no module imports one that imports it back (directly or through others),
and the env's side never imports an agent (agents consume the env, like any user's own agent)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# Where each import name's files live (agents/ and sandbox/ install as codegym.agents and codegym.sandbox).
PACKAGES = {
    "codegym": ROOT / "codegym",
    "codegym.sandbox": ROOT / "sandbox",
    "codegym.agents": ROOT / "agents",
}
# Modules of codegym that build, drive or train agents; no other codegym module may import codegym.agents.
AGENT_USERS = ("codegym.cli", "codegym.loop", "codegym.play", "codegym.training")


def modules() -> dict[str, Path]:
    found = {}
    for prefix, folder in PACKAGES.items():
        for path in folder.rglob("*.py"):
            parts = list(path.relative_to(folder).with_suffix("").parts)
            if prefix == "codegym" and parts[0] in ("sandbox", "agents"):
                continue
            if parts[-1] == "__init__":
                parts = parts[:-1]
            found[".".join([prefix, *parts])] = path
    return found


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The project modules ``name`` imports anywhere (inside functions too), but under ``if TYPE_CHECKING``."""
    tree = ast.parse(path.read_text())
    typing_only = {
        id(sub)
        for node in ast.walk(tree)
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test)
        for sub in ast.walk(node)
    }
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(tree):
        if id(node) in typing_only:
            continue
        if isinstance(node, ast.Import):
            candidates = [[alias.name] for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            candidates = [[f"{base}.{alias.name}", base] for alias in node.names]
        else:
            continue
        for options in candidates:
            target = next((option for option in options if option in known), None)
            if target and target != name:
                found.add(target)
    return found


def graph() -> dict[str, set[str]]:
    known = modules()
    return {name: imports(name, path, set(known)) for name, path in known.items()}


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for target in sorted(edges[node]):
            if target not in index:
                visit(target)
                low[node] = min(low[node], low[target])
            elif target in on_stack:
                low[node] = min(low[node], index[target])
        if low[node] == index[node]:
            component = []
            while True:
                top = stack.pop()
                on_stack.discard(top)
                component.append(top)
                if top == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in sorted(edges):
        if node not in index:
            visit(node)
    return found


def test_the_graph_sees_the_projects_modules_and_their_imports():
    edges = graph()
    assert {"codegym.env", "codegym.sandbox.factory", "codegym.agents.mcts", "codegym.play"} <= set(edges)
    assert "codegym.sandbox.node_sandbox" in edges["codegym.sandbox.factory"]
    assert "codegym.sandbox.ray_sandbox" in edges["codegym.sandbox.factory"]  # an import inside a function


def test_the_cycle_finder_finds_a_cycle():
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]


def test_no_module_imports_itself_back():
    assert cycles(graph()) == []


def test_the_env_side_never_imports_an_agent():
    edges = graph()
    offenders = {
        name: sorted(target for target in targets if target.startswith("codegym.agents"))
        for name, targets in edges.items()
        if name.startswith("codegym.")
        and not name.startswith(("codegym.agents", *AGENT_USERS))
        and any(target.startswith("codegym.agents") for target in targets)
    }
    assert offenders == {}
