"""Every third-party module the package imports (or ships, in the example pipeline) is a declared
dependency: a clean install must not break on an import nobody declared (DESIGN.md lessons)."""

from __future__ import annotations

import ast
import re
import sys
from importlib.metadata import distributions
from pathlib import Path

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

REPO = Path(__file__).resolve().parents[2]
# Shipped in the wheel: the package and the example pipeline packaged with it.
SHIPPED = [*sorted((REPO / "src" / "provenance").rglob("*.py")), *sorted(REPO.glob("steps/*.py"))]


# Standard library from a later Python version on, imported behind a version check.
LATER_STDLIB = {"tomllib"}


def packages_distributions() -> dict[str, list[str]]:
    """Top-level module -> distributions, inferred from the installed files when a distribution
    has no top_level.txt (as importlib.metadata does from 3.11 on; 3.10 only reads the file)."""
    mapping: dict[str, list[str]] = {}
    for dist in distributions():
        declared_top = (dist.read_text("top_level.txt") or "").split()
        inferred = {
            f.parts[0] if len(f.parts) > 1 else f.name.removesuffix(".py")
            for f in dist.files or []
            if not f.parts[0].endswith((".dist-info", ".data", ".egg-info"))
            and (len(f.parts) > 1 or f.name.endswith(".py"))
        }
        for top in {*declared_top, *inferred}:
            mapping.setdefault(top, []).append(dist.metadata["Name"])
    return mapping


def _normalize(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared() -> dict[str, set[str]]:
    """Distribution name -> the groups declaring it ("" = required, else the extra)."""
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    groups = {"": project["dependencies"], **project["optional-dependencies"]}
    out: dict[str, set[str]] = {}
    for group, requirements in groups.items():
        if group == "dev":
            continue
        for requirement in requirements:
            name = re.match(r"[A-Za-z0-9][A-Za-z0-9._-]*", requirement)
            assert name, requirement
            out.setdefault(_normalize(name.group()), set()).add(group)
    return out


def imported_modules(path: Path) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return (
        names - set(sys.stdlib_module_names) - LATER_STDLIB - {"provenance", "steps", "__future__"}
    )


def test_every_imported_third_party_module_is_a_declared_dependency() -> None:
    distributions = packages_distributions()
    deps = declared()
    undeclared = []
    for path in SHIPPED:
        for module in sorted(imported_modules(path)):
            candidates = {_normalize(d) for d in distributions.get(module, [module])}
            if not candidates & deps.keys():
                undeclared.append(f"{path.relative_to(REPO)}: {module} ({', '.join(candidates)})")
    assert undeclared == [], "imported but not declared in pyproject.toml:\n" + "\n".join(
        undeclared
    )


def test_core_imports_need_no_extra() -> None:
    """Modules imported at module level by the core need a required dependency, not an extra."""
    distributions = packages_distributions()
    deps = declared()
    optional_ok = (
        "gate/mlflow/_store.py",  # the registry-store plugin: only loaded by mlflow itself
        "slsa/_bundle.py",  # Sigstore verification: imported only on the keyless path
    )
    wrong = []
    for path in (REPO / "src" / "provenance").rglob("*.py"):
        if path.as_posix().endswith(optional_ok):
            continue
        tree = ast.parse(path.read_text())
        top = [n for n in tree.body if isinstance(n, (ast.Import, ast.ImportFrom))]
        for node in top:
            module = (
                node.names[0].name if isinstance(node, ast.Import) else (node.module or "")
            ).split(".")[0]
            if not module or module in {*sys.stdlib_module_names, *LATER_STDLIB, "provenance"}:
                continue
            groups = set().union(
                *(deps.get(_normalize(d), set()) for d in distributions.get(module, [module]))
            )
            if "" not in groups:
                wrong.append(f"{path.relative_to(REPO)}: {module} {sorted(groups)}")
    assert wrong == []
