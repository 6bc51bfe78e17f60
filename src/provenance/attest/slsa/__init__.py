"""SLSA v1 provenance: build and sign statements; verify provenance offline or via slsa-verifier."""

from provenance.attest.slsa._expect import Expectations
from provenance.attest.slsa._result import Failure, SlsaResult
from provenance.attest.slsa.build import BUILD_TYPE, PREDICATE_TYPE, build_statement
from provenance.attest.slsa.verify import verify_builtin

__all__ = [
    "BUILD_TYPE",
    "PREDICATE_TYPE",
    "Expectations",
    "Failure",
    "SlsaResult",
    "build_statement",
    "verify_builtin",
]
