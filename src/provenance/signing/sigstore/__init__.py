"""Sigstore: keyless signing with the ambient identity, and offline verification paths.

Signing (`sign_dsse`) goes through sigstore-python against the public-good instance. For
verification, sigstore-python verifies what it can load; what it refuses to load is verified
by this package's own offline paths (`verify_offline`, chosen by `route`): timestamp-only
bundles (GitHub's instance, `_tsa_only`) and `intoto/0.0.2` log entries (`_rekor_intoto`).
Named trusted roots ship inside the package (`named_root`); nothing is fetched at verify time.
sigstore is imported lazily: this package is light until a function runs.
"""

from __future__ import annotations

import base64
import json

from provenance.errors import UsageError
from provenance.signing.sigstore._material import BundleRefused, VerifiedBundle
from provenance.signing.sigstore._offline import route, verify_offline
from provenance.signing.sigstore._rekor_intoto import match_subject
from provenance.signing.sigstore._roots import NAMES, load_root, named_root

__all__ = [
    "NAMES",
    "BundleRefused",
    "VerifiedBundle",
    "ambient_token",
    "load_root",
    "match_subject",
    "named_root",
    "route",
    "sign_dsse",
    "signing_workflow",
    "verify_offline",
]


def ambient_token() -> str:
    """The ambient OIDC identity token (GitHub Actions' id-token), or a UsageError."""
    from sigstore.oidc import detect_credential

    token = detect_credential()
    if not token:
        raise UsageError(
            "--sigstore needs an ambient OIDC identity (GitHub Actions with "
            "`permissions: id-token: write`); none was found. Use --key instead."
        )
    return str(token)


def signing_workflow(token: str) -> str | None:
    """`https://github.com/` + the token's `job_workflow_ref` claim: the identity Fulcio certifies.

    Inside a reusable workflow that is the reusable one, not GITHUB_WORKFLOW_REF. Read without
    verifying the token: it only names our own statement's builder, which the verifier then
    compares with the certificate Fulcio issued for this very token.
    """
    try:
        part = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))
    except (IndexError, ValueError):
        return None
    ref = claims.get("job_workflow_ref") if isinstance(claims, dict) else None
    return f"https://github.com/{ref}" if isinstance(ref, str) and ref else None


def sign_dsse(payload: bytes, token: str) -> bytes:
    """A Sigstore bundle (one JSON line) over an in-toto statement's canonical bytes."""
    from sigstore.dsse import Statement
    from sigstore.models import ClientTrustConfig
    from sigstore.oidc import IdentityToken
    from sigstore.sign import SigningContext

    ctx = SigningContext.from_trust_config(ClientTrustConfig.production())
    with ctx.signer(IdentityToken(token)) as signer:
        bundle = signer.sign_dsse(Statement(payload))
    return bundle.to_json().encode() + b"\n"
