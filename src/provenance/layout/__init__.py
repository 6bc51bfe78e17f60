"""Layouts: strict YAML, secure-by-default compilation to in-toto, lint and signing."""

import importlib
from typing import TYPE_CHECKING, Any

from provenance.layout._compile import compile_layout
from provenance.layout._model import InspectionDef, LayoutSpec, ModelDecl, Rule, StepDef, Threshold
from provenance.layout._policy import LayoutPolicy
from provenance.layout.lint import Finding, lint

if TYPE_CHECKING:
    from provenance.layout._yaml import load_yaml
    from provenance.layout.sign import SignedLayout, sign_layout

# Reading YAML and signing load PyYAML and in-toto's signing model; verifying a signed layout
# needs neither, so they are imported on first use.
_LAZY = {
    "load_yaml": "provenance.layout._yaml",
    "SignedLayout": "provenance.layout.sign",
    "sign_layout": "provenance.layout.sign",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(_LAZY[name]), name)
    globals()[name] = value
    return value


__all__ = [
    "Finding",
    "InspectionDef",
    "LayoutPolicy",
    "LayoutSpec",
    "ModelDecl",
    "Rule",
    "SignedLayout",
    "StepDef",
    "Threshold",
    "compile_layout",
    "lint",
    "load_yaml",
    "sign_layout",
]
