"""Which bundles the offline paths verify instead of sigstore-python, and the one call to do it.

    route(doc) -> "tsa-only" | "intoto-0.0.2" | None
    verify_offline(doc, root, *, source=None, policy=None) -> VerifiedBundle | None

`route` looks only at the bundle's shape: no log entry at all -> `_tsa_only`; any
`intoto/0.0.2` entry -> `_rekor_intoto`; anything else -> None (sigstore-python's `Verifier`
verifies it as before). Routing every bundle without a log entry here is what makes a public-good
root refuse a bundle whose entry was stripped: `_tsa_only` accepts only roots without logs.

`verify_offline` returns None for bundles it does not route, else the `VerifiedBundle`;
it raises `InputError` (exit 3) for malformed input and `BundleRefused` (exit 1) otherwise.
The caller still checks the payload type, the statement and the identity (its `policy` is
applied to the certificate before the signature is checked, as sigstore-python does).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Literal

from provenance.signing.sigstore._material import BundleRefused, VerifiedBundle
from provenance.signing.sigstore._rekor_intoto import is_intoto_v002, verify_intoto_v002
from provenance.signing.sigstore._tsa_only import is_tsa_only, verify_tsa_only

if TYPE_CHECKING:
    from sigstore.models import TrustedRoot
    from sigstore.verify.policy import VerificationPolicy

__all__ = ["BundleRefused", "VerifiedBundle", "route", "verify_offline"]


def route(doc: Mapping[str, Any]) -> Literal["tsa-only", "intoto-0.0.2"] | None:
    """The offline path for a bundle document, or None for sigstore-python's own."""
    if is_tsa_only(doc):
        return "tsa-only"
    if is_intoto_v002(doc):
        return "intoto-0.0.2"
    return None


def verify_offline(
    doc: Mapping[str, Any],
    root: TrustedRoot | Mapping[str, Any],
    *,
    source: str | None = None,
    policy: VerificationPolicy | None = None,
) -> VerifiedBundle | None:
    """Verify a bundle on its offline path; None when sigstore-python verifies it."""
    path = route(doc)
    if path == "tsa-only":
        return verify_tsa_only(doc, root, source=source, policy=policy)
    if path == "intoto-0.0.2":
        return verify_intoto_v002(doc, root, source=source, policy=policy)
    return None
