"""The package layout holds: no import cycle, small modules (esper_agents <= 500 lines, esper_env <= 600),
common/ free of offline/, the env free of its docs generator."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("esper_env", "esper_agents")
MAX_AGENT_MODULE_LINES = 500
MAX_ENV_MODULE_LINES = 600


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for pkg in PACKAGES for p in sorted((ROOT / pkg).rglob("*.py"))}


def imports(path: Path, known: set[str]) -> set[str]:
    """Project modules imported anywhere in ``path`` (function bodies too), except ``if TYPE_CHECKING:``."""
    tree = ast.parse(path.read_text())
    skip: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            skip.update(id(n) for child in node.body for n in ast.walk(child))
    found = set()
    for node in ast.walk(tree):
        if id(node) in skip:
            continue
        names = []
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
        found.update(n for n in names if n in known)
    return found


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return stack[stack.index(nxt) :] + [nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_cycle_finder_finds_a_cycle() -> None:
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_no_import_cycle() -> None:
    mods = modules()
    known = set(mods)
    # A package's __init__ importing its own submodules is how packages export names, not a cycle.
    graph = {
        name: {
            m for m in imports(path, known) if not (path.name == "__init__.py" and m.startswith(name + "."))
        }
        for name, path in mods.items()
    }
    assert find_cycle(graph) is None, f"import cycle: {' -> '.join(find_cycle(graph))}"


@pytest.mark.parametrize("name", [n for n in modules() if n.startswith("esper_agents")])
def test_agent_modules_stay_small(name: str) -> None:
    lines = len(modules()[name].read_text().splitlines())
    assert lines <= MAX_AGENT_MODULE_LINES, f"{name} has {lines} lines: split it along its seams"


@pytest.mark.parametrize("name", [n for n in modules() if n.startswith("esper_env")])
def test_env_modules_stay_small(name: str) -> None:
    lines = len(modules()[name].read_text().splitlines())
    assert lines <= MAX_ENV_MODULE_LINES, f"{name} has {lines} lines: split it along its seams"


def test_env_library_never_imports_the_docs_generator() -> None:
    mods = modules()
    for name, path in mods.items():
        if name.startswith("esper_env") and name != "esper_env.env_card":
            assert "esper_env.env_card" not in imports(path, set(mods)), f"{name} imports esper_env.env_card"


def test_common_never_imports_offline() -> None:
    mods = modules()
    for name, path in mods.items():
        if name.startswith("esper_agents.common"):
            bad = {m for m in imports(path, set(mods)) if m.startswith("esper_agents.offline")}
            assert not bad, f"{name} imports {bad}"


def test_library_never_imports_a_commands_module() -> None:
    """What a command runs may import the library; the library never imports a command (the CLI
    modules: esper_agents.cli and every ``*.commands``)."""
    mods = modules()
    commands = {n for n in mods if n == "esper_agents.cli" or n.endswith(".commands")}
    for name, path in mods.items():
        if name in commands:
            continue
        found = imports(path, set(mods))
        bad = {m for m in found if m in commands or any(m.startswith(c + ".") for c in commands)}
        assert not bad, f"library module {name} imports the command module(s) {sorted(bad)}"


def test_one_settings_record() -> None:
    """The env's arguments have one record, ``esper_env.settings.EnvSettings``: no module of the packages or
    the benchmarks defines another settings class or an ``env_kwargs`` builder."""
    sources = [p for pkg in (*PACKAGES, "benchmarks") for p in sorted((ROOT / pkg).rglob("*.py"))]
    found = []
    for path in sources:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ClassDef) and node.name == "EnvSettings":
                found.append(f"{path.relative_to(ROOT)}: class {node.name}")
            elif isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef) and node.name == "env_kwargs":
                found.append(f"{path.relative_to(ROOT)}: def {node.name}")
    assert found == ["esper_env/settings.py: class EnvSettings"], found
