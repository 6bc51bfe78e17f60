"""SLSA v1 provenance: build and sign statements; verify provenance offline or via slsa-verifier."""

from provenance.slsa._expect import Expectations
from provenance.slsa._result import Failure, SlsaResult
from provenance.slsa.statement import BUILD_TYPE, PREDICATE_TYPE, build_statement
from provenance.slsa.verify import verify_builtin

__all__ = [
    "BUILD_TYPE",
    "PREDICATE_TYPE",
    "Expectations",
    "Failure",
    "SlsaResult",
    "build_statement",
    "verify_builtin",
]
