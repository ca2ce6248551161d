"""The package's stages import only downward, without cycles, and the modules `--help` reads
load no TensorFlow (docs/design.md, Code layout)."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import mobile_skin

PACKAGE = Path(mobile_skin.__file__).parent


def package_modules() -> set[str]:
    """Every module as a dotted name below ``mobile_skin`` (``quant.qat``, ``cli``)."""
    found = set()
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if parts:
            found.add(".".join(parts))
    return found


def imports_of(path: Path, modules: set[str]) -> set[str]:
    """The package modules ``path`` imports anywhere in its code (module level or in a
    function: a lazy import is still a dependency), as dotted names below ``mobile_skin``."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            parts = node.module.split(".")
            if parts[0] != "mobile_skin":
                continue
            base = ".".join(parts[1:])
            for alias in node.names:
                name = f"{base}.{alias.name}" if base else alias.name
                if name in modules:  # from mobile_skin.quant import qat
                    found.add(name)
                elif base:  # from mobile_skin.quant.qat import quantize_aware
                    found.add(base)
        elif isinstance(node, ast.Import):
            for alias in node.names:
                parts = alias.name.split(".")
                if parts[0] == "mobile_skin" and len(parts) > 1:
                    found.add(".".join(parts[1:]))
    return {m for m in found if m in modules}


def import_graph() -> dict[str, set[str]]:
    modules = package_modules()
    graph = {}
    for m in sorted(modules):
        path = PACKAGE / (m.replace(".", "/") + ".py")
        if not path.is_file():
            path = PACKAGE / m.replace(".", "/") / "__init__.py"
        graph[m] = imports_of(path, modules) - {m}
    return graph


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


def upward_imports(graph: dict[str, set[str]], layers: tuple[str, ...]) -> list[str]:
    """``a -> b`` for every import of a stage module that is not from its own package or one
    before it in ``layers``; top-level modules (the commands) are not stage modules, and a
    stage module may not import them."""
    rank = {name: i for i, name in enumerate(layers)}
    bad = []
    for module, deps in graph.items():
        own = module.split(".")[0]
        if own not in rank:
            continue
        for dep in sorted(deps):
            if rank.get(dep.split(".")[0], len(layers)) > rank[own]:
                bad.append(f"{module} -> {dep}")
    return bad


def test_finds_a_cycle_when_there_is_one():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": set()}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_finds_an_import_against_the_layer_order():
    graph = {
        "low.a": {"low.b"},
        "low.b": set(),
        "high.c": {"low.a", "cmd"},
        "low.d": {"high.c"},
        "cmd": {"high.c"},
    }
    assert upward_imports(graph, ("low", "high")) == ["high.c -> cmd", "low.d -> high.c"]


#: The top level: the mobile-skin command, the demo and the ``python -m mobile_skin.X`` commands
#: the README names, each a few lines that run a stage module's ``main``.
COMMANDS = {"cli", "demo", "train", "evaluate", "calibrate", "compare", "predict", "sweep",
            "device_golden", "android_golden", "synthetic"}  # fmt: skip


def test_every_module_belongs_to_a_stage_or_is_a_command():
    graph = import_graph()
    assert "quant.qat" in graph["export.exporter"] and "common.formats" in graph["parity.gate"]
    stray = sorted(m for m in graph if "." not in m and m not in mobile_skin.LAYERS
                   and m not in COMMANDS)  # fmt: skip
    assert stray == [], f"modules outside the stage packages: {stray}"


def test_stages_import_only_downward():
    bad = upward_imports(import_graph(), mobile_skin.LAYERS)
    assert bad == [], "imports against the layer order of mobile_skin.LAYERS:\n" + "\n".join(bad)


def test_the_package_has_no_import_cycle():
    cycle = find_cycle(import_graph())
    assert cycle is None, " -> ".join(cycle or [])


def test_the_modules_help_reads_load_no_tensorflow():
    modules = ["common.formats", "common.config", "common.cli_args", "cli", "export.cli",
               "bench.profile_cli"]  # fmt: skip
    code = (
        "import importlib, sys\n"
        f"for m in {modules!r}: importlib.import_module('mobile_skin.' + m)\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('tensorflow', 'tf_keras')))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_every_python_m_command_runs_a_stage_modules_main():
    """``python -m mobile_skin.train`` and the other spellings the README names keep working: each
    top-level command module runs the ``main`` of the stage module that holds the command."""
    import importlib

    for name in sorted(COMMANDS - {"cli", "demo"}):
        main = importlib.import_module(f"mobile_skin.{name}").main
        package = main.__module__.split(".")[1]
        assert package in mobile_skin.LAYERS and main.__name__ == "main", name
    done = subprocess.run([sys.executable, "-m", "mobile_skin.compare", "--help"],
                          capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == 0 and done.stdout.startswith("usage: python -m mobile_skin.compare")


def test_only_command_modules_resolve_a_run():
    """What the user typed becomes a run only in a command: a module that defines no ``main``
    never calls ``resolve_run`` or ``open_run``; the stages below take the resolved run or its
    data (docs/design.md, Code layout)."""
    offenders = []
    for module in import_graph():
        path = PACKAGE / (module.replace(".", "/") + ".py")
        if not path.is_file() or module == "data.run":
            continue
        tree = ast.parse(path.read_text())
        functions = {n.name for n in tree.body if isinstance(n, ast.FunctionDef)}
        if any(name == "main" or name.endswith("_main") for name in functions):
            continue
        calls = {
            node.func.id if isinstance(node.func, ast.Name) else node.func.attr
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Name | ast.Attribute)
        }
        offenders += [f"{module}: {c}" for c in sorted(calls & {"resolve_run", "open_run"})]
    assert offenders == [], offenders
