"""Layouts: strict YAML, secure-by-default compilation to in-toto, lint and signing."""

import importlib
from typing import TYPE_CHECKING, Any

from provenance.layout._compile import (
    compile_layout,
    functionary_names,
    model_declaration,
    run_id_optional_steps,
    threshold_declarations,
)
from provenance.layout._model import LayoutSpec, ModelDecl, Rule, StepDef, Threshold
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
    "LayoutSpec",
    "ModelDecl",
    "Rule",
    "SignedLayout",
    "StepDef",
    "Threshold",
    "compile_layout",
    "functionary_names",
    "lint",
    "load_yaml",
    "model_declaration",
    "run_id_optional_steps",
    "sign_layout",
    "threshold_declarations",
]
