"""SLSA provenance: build and sign v1 statements; verify v0.2/v1 offline or via slsa-verifier.

Built and read as the typed predicates of `provenance.attest.slsa_provenance`, through the same
Statement code as every other attestation here; Sigstore itself lives in `provenance.signing`.
"""

from provenance.attest.slsa._expect import Expectations
from provenance.attest.slsa._result import Failure, SlsaResult
from provenance.attest.slsa.build import BUILD_TYPE, build_statement
from provenance.attest.slsa.verify import verify_builtin
from provenance.attest.slsa_provenance import PREDICATE_TYPE

__all__ = [
    "BUILD_TYPE",
    "PREDICATE_TYPE",
    "Expectations",
    "Failure",
    "SlsaResult",
    "build_statement",
    "verify_builtin",
]
