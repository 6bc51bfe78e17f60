"""OpenSSF Model Signing in the attestation layer: the implementation lives in `signing.oms`.

It moved down so that recording a fine-tuning step can verify a base model's OMS signature
(`record` sits below `attest`); this name stays for callers of `provenance.attest.oms`.
"""

from provenance.signing.oms import (
    MAX_SIGNATURE_BYTES,
    VerifiedModel,
    library_version,
    sign,
    verify,
)

__all__ = ["MAX_SIGNATURE_BYTES", "VerifiedModel", "library_version", "sign", "verify"]
