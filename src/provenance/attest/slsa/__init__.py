"""SLSA provenance: build and sign v1 statements; verify v0.2/v1 offline or via slsa-verifier.

Built and read as the typed predicates of `provenance.attest.slsa_provenance`, through the same
Statement code as every other attestation here; Sigstore itself lives in `provenance.signing`.
"""

from typing import Any

from provenance.attest.slsa._expect import Expectations, parse_inputs
from provenance.attest.slsa._formats import OFFLINE_ENTRIES
from provenance.attest.slsa._identity import certificate_facts
from provenance.attest.slsa._result import Failure, SlsaResult
from provenance.attest.slsa.build import BUILD_TYPE, build_statement
from provenance.attest.slsa.verify import default_trusted_root, verify_builtin
from provenance.attest.slsa_provenance import PREDICATE_TYPE

__all__ = [
    "OFFLINE_ENTRIES",
    "certificate_facts",
    "default_trusted_root",
    "load_trusted_root",
    "BUILD_TYPE",
    "PREDICATE_TYPE",
    "Expectations",
    "parse_inputs",
    "Failure",
    "SlsaResult",
    "build_statement",
    "verify_builtin",
]


def load_trusted_root(path: str) -> Any:
    """A Sigstore trusted root file (GitHub's included); imports sigstore only when called."""
    from provenance.attest.slsa._bundle import load_trusted_root as load

    return load(path)
