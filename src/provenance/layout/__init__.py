"""Layouts: strict YAML, secure-by-default compilation to in-toto, lint and signing."""

from typing import TYPE_CHECKING

from provenance._lazy import lazy_names
from provenance.layout._compile import compile_layout
from provenance.layout._model import (
    InspectionDef,
    LayoutSpec,
    ModelDecl,
    Rule,
    StepDef,
    Threshold,
    prefix_problem,
)
from provenance.layout._policy import LayoutPolicy
from provenance.layout.lint import Finding, lint

if TYPE_CHECKING:
    from provenance.layout._yaml import load_yaml
    from provenance.layout.sign import SignedLayout, sign_layout

# Reading YAML and signing load PyYAML and in-toto's signing model; verifying a signed layout
# needs neither, so they are imported on first use.
_LAZY = {
    "load_yaml": ("_yaml", "load_yaml"),
    "SignedLayout": ("sign", "SignedLayout"),
    "sign_layout": ("sign", "sign_layout"),
}
__getattr__, __dir__ = lazy_names(__name__, _LAZY)


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
    "prefix_problem",
    "sign_layout",
]
