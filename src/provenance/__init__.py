"""ml-provenance: signed in-toto links, layouts, SLSA provenance and a verified MLflow gate.

`import provenance` stays light: submodules (and mlflow, sigstore) load on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from provenance._version import __version__
from provenance.errors import (
    InfrastructureError,
    InputError,
    ProvenanceError,
    UsageError,
    VerificationError,
)

if TYPE_CHECKING:
    from provenance.record import StepSpec, run_step, step
    from provenance.verification import VerificationResult, verify

__all__ = [
    "InfrastructureError",
    "InputError",
    "ProvenanceError",
    "StepSpec",
    "UsageError",
    "VerificationError",
    "VerificationResult",
    "__version__",
    "run_step",
    "step",
    "verify",
]

_LAZY = {
    "step": "provenance.record",
    "run_step": "provenance.record",
    "StepSpec": "provenance.record",
    "verify": "provenance.verification",
    "VerificationResult": "provenance.verification",
}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'provenance' has no attribute '{name}'")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value
