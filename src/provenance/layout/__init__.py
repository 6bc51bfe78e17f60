"""Layouts: strict YAML, secure-by-default compilation to in-toto, lint and signing."""

from provenance.layout._compile import (
    compile_layout,
    functionary_names,
    model_declaration,
    run_id_optional_steps,
    threshold_declarations,
)
from provenance.layout._model import LayoutSpec, ModelDecl, Rule, StepDef, Threshold
from provenance.layout._yaml import load_yaml
from provenance.layout.lint import Finding, lint
from provenance.layout.sign import SignedLayout, sign_layout

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
