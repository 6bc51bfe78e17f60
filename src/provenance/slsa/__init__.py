"""SLSA v1 provenance: build and sign statements; verify provenance offline or via slsa-verifier."""

from provenance.slsa.statement import BUILD_TYPE, PREDICATE_TYPE, build_statement
from provenance.slsa.verify import Expectations, SlsaResult, verify_builtin

__all__ = [
    "BUILD_TYPE",
    "PREDICATE_TYPE",
    "Expectations",
    "SlsaResult",
    "build_statement",
    "verify_builtin",
]
