"""The package's modules import each other without cycles, and the modules `--help` reads load
no TensorFlow (docs/design.md, Code layout)."""

from __future__ import annotations

import ast
from pathlib import Path

import mobile_skin

PACKAGE = Path(mobile_skin.__file__).parent


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The package modules ``path`` imports anywhere in its code (module level or in a
    function: a lazy import is still a dependency)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] != "mobile_skin":
                continue
            names = [parts[1]] if len(parts) > 1 else [a.name for a in node.names]
            found.update(n for n in names if n in modules)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "mobile_skin" and len(parts) > 1 and parts[1] in modules:
                    found.add(parts[1])
    return found - {path.stem}


def import_graph() -> dict[str, set[str]]:
    modules = {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    return {m: imports_of(PACKAGE / f"{m}.py", modules) for m in sorted(modules)}


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle as ``[a, b, ..., a]``, or None."""
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                return [*path[path.index(nxt) :], nxt]
            if nxt not in state and (cycle := visit(nxt)):
                return cycle
        path.pop()
        state[node] = 2
        return None

    for node in graph:
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_finds_a_cycle_when_there_is_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_package_has_no_import_cycle():
    graph = import_graph()
    assert "parity" in graph["export"] and "formats" in graph["parity"]  # the reader works
    cycle = find_cycle(graph)
    assert cycle is None, " -> ".join(cycle or [])


def test_the_modules_help_reads_load_no_tensorflow():
    import subprocess
    import sys

    modules = ["formats", "config", "cli", "export_cli", "profile_cli"]
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module('mobile_skin.' + m)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf_keras')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
