"""Imports point downward only (DESIGN.md package map): cli > gate > attest >
verification > record > layout/links > signing > hashing/scanning > shared low-level modules."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "provenance"
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
    "signing": 7,
    "datasets": 7.5,  # manifests and engines; may check signatures, builds on hashing
    "hashing": 8,
    "scanning": 8,
    "_progress": 9,
    "_config": 9,
    "_fs": 9,
    "_github": 9,
    "_example": 9,
    "errors": 10,
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
