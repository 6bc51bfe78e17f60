"""Imports point downward only (DESIGN.md package map): cli > gate > attest >
verification > record > layout/links > signing > hashing/scanning > shared low-level modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[2] / "src" / "provenance"
RANK = {
    "cli": 0,
    "_demo": 1,
    "_demo_stack": 1,
    "stack": 1.5,  # starts servers for cli, demo and tests; never imports gate
    "report": 1.5,  # renders verification results; may use gate, attest, links
    "gate": 2,
    "attest": 3.5,  # consumes verification results; SLSA provenance is attest/slsa/
    "verification": 4,
    "record": 5,
    "layout": 6,
    "links": 6,
    "datasets": 6.5,  # manifests, engines, the verifying loader: on signing and hashing
    "signing": 7,
    "hashing": 8,
    "scanning": 8,
    "_progress": 9,
    "_config": 9,
    "_fs": 9,
    "_github": 9,
    "_example": 9,
    "integrations": 1.2,  # orchestrator adapters over record's seams; may use gate
    "errors": 10,
    "_lazy": 10,  # PEP 562 lazy names for packages: imports nothing of the project
    "_version": 10,
}


def layer(module: str) -> str:
    return module.split(".")[1] if module.count(".") >= 1 else module


MODULES = sorted(p for p in SRC.rglob("*.py") if p.parent != SRC or p.name != "__init__.py")


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(SRC)))
def test_imports_point_downward(path: Path) -> None:
    rel = path.relative_to(SRC)
    source_layer = rel.parts[0].removesuffix(".py")
    assert source_layer in RANK, f"{rel}: unknown layer, add it to the package map"
    for node in ast.walk(ast.parse(path.read_text())):
        if (
            isinstance(node, ast.ImportFrom)
            and node.module
            and node.module.startswith("provenance.")
        ):
            target = layer(node.module)
            assert RANK[target] >= RANK[source_layer], (
                f"{rel} imports {node.module}: '{source_layer}' may not depend on '{target}'"
            )


# Import cycles. Every import is counted wherever it sits (module level or inside a function: a
# function-level import is how a cycle hides until the function first runs), except those under
# `if TYPE_CHECKING:`. Those never execute, so they cannot give a partly initialised module; they
# are how a module types a value defined above it in its own package, and refusing them would
# push annotations back to `Any`. Their direction is still checked by the test above.
MODULE_NAMES = {
    ".".join(p.relative_to(SRC.parent).with_suffix("").parts).removesuffix(".__init__"): p
    for p in SRC.rglob("*.py")
}


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imported(name: str, path: Path) -> set[str]:
    """The provenance modules `name` imports at run time (a name from a package resolves to
    its submodule when it is one: `from provenance.x import _y` imports provenance.x._y)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(node, ast.If) and _is_type_checking(node.test) and child in node.body:
                continue
            if isinstance(child, ast.Import):
                found.update(a.name for a in child.names)
            elif isinstance(child, ast.ImportFrom):
                base = child.module or ""
                if child.level:
                    parts = package.split(".")[: len(package.split(".")) - child.level + 1]
                    base = ".".join([*parts, *([base] if base else [])])
                for alias in child.names:
                    sub = f"{base}.{alias.name}"
                    found.add(sub if sub in MODULE_NAMES else base)
            visit(child)

    visit(ast.parse(path.read_text()))
    return {m for m in found if m in MODULE_NAMES and m != name}


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    out: list[list[str]] = []
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    out.append(sorted(component))
    return out


def _path(graph: dict[str, set[str]], component: list[str]) -> list[str]:
    """One concrete cycle through the component's first module, for the message."""
    members, start = set(component), component[0]
    seen, trail = {start}, [start]
    while True:
        step = sorted(graph[trail[-1]] & members)
        back = start if start in step else None
        if back is not None and len(trail) > 1:
            return [*trail, start]
        ahead = next((m for m in step if m not in seen), None)
        if ahead is None:
            return [*trail, start]
        seen.add(ahead)
        trail.append(ahead)


def test_no_import_cycles() -> None:
    graph = {name: _imported(name, path) for name, path in MODULE_NAMES.items()}
    cycles = [" -> ".join(_path(graph, c)) for c in _cycles(graph)]
    assert not cycles, "import cycles (break them: move what both need below both):\n" + (
        "\n".join(cycles)
    )


def test_the_cycle_check_finds_a_cycle_hidden_in_a_function() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}, "e": set()}
    assert _cycles(graph) == [["a", "b", "c"]]
    assert _path(graph, ["a", "b", "c"]) == ["a", "b", "c", "a"]
    source = "def f():\n    from provenance.verification import _files\n"
    tree = ast.parse(source)
    assert any(isinstance(n, ast.ImportFrom) for n in ast.walk(tree))


def _private_imports(path: Path) -> list[str]:
    """`provenance.X._y` (or a `_name` from provenance.X) imported from outside package X."""
    rel = path.relative_to(SRC)
    own = rel.parts[0].removesuffix(".py")
    found = []
    for node in ast.walk(ast.parse(path.read_text())):
        if not (isinstance(node, ast.ImportFrom) and node.module):
            continue
        parts = node.module.split(".")
        if parts[0] != "provenance" or len(parts) < 2 or parts[1] == own:
            continue
        private = [p for p in parts[2:] if p.startswith("_") and not p.startswith("__")]
        names = [
            a.name for a in node.names if a.name.startswith("_") and not a.name.startswith("__")
        ]
        if private or names:
            found.append(
                f"{rel}: from {node.module} import {', '.join(a.name for a in node.names)}"
            )
    return found


def test_no_package_imports_another_packages_private_modules() -> None:
    """A package's face is its `__init__`: what another package needs, it exports there."""
    offenders = [line for path in MODULES for line in _private_imports(path)]
    assert offenders == [], "\n".join(offenders)


_ENVIRONMENT = {"environ", "environb", "getenv", "getenvb", "putenv", "unsetenv"}


def _environment_uses(source: str) -> list[int]:
    """Lines that read or set the process environment other than through `_config`."""
    tree = ast.parse(source)
    modules = {"os", "posix"} | {
        a.asname
        for node in ast.walk(tree)
        if isinstance(node, ast.Import)
        for a in node.names
        if a.name in {"os", "posix"} and a.asname
    }
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr in _ENVIRONMENT:
            if isinstance(node.value, ast.Name) and node.value.id in modules:
                found.append(node.lineno)
        elif (
            isinstance(node, ast.ImportFrom)
            and node.module in {"os", "posix"}
            and any(a.name in _ENVIRONMENT for a in node.names)
        ):
            found.append(node.lineno)
    return found


def test_only_config_reads_or_sets_environment_variables() -> None:
    """`_config` is the one door to the environment, so every setting resolves in one order and
    what the package takes from (or leaves in) the environment can be read in one file."""
    offenders = [
        f"{path.relative_to(SRC)}:{line}"
        for path in MODULES
        if path.relative_to(SRC).as_posix() != "_config.py"
        for line in _environment_uses(path.read_text())
    ]
    assert offenders == [], "read or set through provenance._config instead:\n" + "\n".join(
        offenders
    )


@pytest.mark.parametrize(
    "source",
    [
        "import os\nx = os.environ['A']\n",
        "import os\nos.environ.setdefault('A', 'b')\n",
        "import os\nx = os.getenv('A')\n",
        "from os import environ\n",
        "from os import getenv as g\n",
        "import posix\nposix.putenv(b'A', b'b')\n",
        "import os as _os\n_os.environ.pop('A')\n",
    ],
)
def test_the_environment_check_sees_every_spelling(source: str) -> None:
    assert _environment_uses(source) != []
