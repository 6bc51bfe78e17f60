"""Certificate policies for SLSA builders, as small objects with sigstore-python's `verify(cert)`.

Each raises sigstore's VerificationError with a got/expected message. Fulcio certificates carry
the source repository and ref twice: v2 extensions (…57264.1.12/.14, DER strings) and the older
GitHub ones (…57264.1.5/.6, raw); the newer is used when present.
"""

from __future__ import annotations

import re
from typing import Any

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
GENERATOR_REPO = "https://github.com/slsa-framework/slsa-github-generator"
TRUSTED_WORKFLOWS = (
    "generator_generic_slsa3.yml",
    "generator_container_slsa3.yml",
    "builder_go_slsa3.yml",
    "builder_nodejs_slsa3.yml",
    "builder_container-based_slsa3.yml",
    "builder_gradle_slsa3.yml",
    "builder_maven_slsa3.yml",
)
_TRUSTED = re.compile(
    re.escape(GENERATOR_REPO + "/.github/workflows/")
    + "("
    + "|".join(re.escape(w) for w in TRUSTED_WORKFLOWS)
    + ")"
    + r"@refs/tags/v\d+\.\d+\.\d+\Z"
)
OID_ISSUER_V1 = "1.3.6.1.4.1.57264.1.1"
OID_ISSUER_V2 = "1.3.6.1.4.1.57264.1.8"
OID_REPO_V1, OID_REPO_V2 = "1.3.6.1.4.1.57264.1.5", "1.3.6.1.4.1.57264.1.12"
OID_REF_V1, OID_REF_V2 = "1.3.6.1.4.1.57264.1.6", "1.3.6.1.4.1.57264.1.14"


def _error(message: str) -> Exception:
    from sigstore.errors import VerificationError

    return VerificationError(message)


def extension(cert: Any, v2: str, v1: str | None = None) -> str | None:
    """The value of a Fulcio extension, preferring the DER-encoded v2 form."""
    from cryptography.hazmat import asn1
    from cryptography.x509 import ExtensionNotFound, ObjectIdentifier

    try:
        ext = cert.extensions.get_extension_for_oid(ObjectIdentifier(v2)).value
        return str(asn1.decode_der(str, ext.value))
    except ExtensionNotFound:
        pass
    if v1 is None:
        return None
    try:
        return str(cert.extensions.get_extension_for_oid(ObjectIdentifier(v1)).value.value.decode())
    except ExtensionNotFound:
        return None


def identity(cert: Any) -> str:
    """The certificate's URI SAN: the workflow identity that signed."""
    from cryptography.x509 import SubjectAlternativeName, UniformResourceIdentifier

    sans = cert.extensions.get_extension_for_class(SubjectAlternativeName).value
    uris = sans.get_values_for_type(UniformResourceIdentifier)
    if not uris:
        raise _error("certificate has no URI identity (not issued to a CI workflow)")
    return str(uris[0])


def normalize_repo(uri: str) -> str:
    """`github.com/ORG/REPO` for any of: https://…, git+https://…, ORG/REPO, trailing .git."""
    uri = uri.strip().removeprefix("git+").removeprefix("https://").removeprefix("http://")
    uri = uri.split("@", 1)[0].removesuffix(".git").rstrip("/")
    return uri if uri.count("/") >= 2 else f"github.com/{uri}"


def builder_matches(actual: str, wanted: str | None) -> bool:
    """A trusted generator at a release tag, or the --builder-id given (with or without @ref)."""
    if wanted is None:
        return bool(_TRUSTED.match(actual))
    if "@" in wanted:
        return actual == wanted
    return actual.split("@", 1)[0] == wanted and "@refs/tags/v" in actual


class Issuer:
    def __init__(self, issuer: str = GITHUB_ISSUER) -> None:
        self.issuer = issuer

    def verify(self, cert: Any) -> None:
        got = extension(cert, OID_ISSUER_V2, OID_ISSUER_V1)
        if got != self.issuer:
            raise _error(f"certificate issuer: got {got!r}, expected {self.issuer!r}")


class TrustedBuilder:
    def __init__(self, builder_id: str | None = None) -> None:
        self.builder_id = builder_id

    def verify(self, cert: Any) -> None:
        got = identity(cert)
        if not builder_matches(got, self.builder_id):
            wanted = self.builder_id or (
                f"{GENERATOR_REPO}/.github/workflows/<trusted generator>@refs/tags/vX.Y.Z"
            )
            raise _error(f"untrusted builder: certificate identity {got!r}, expected {wanted!r}")


class SourceRepository:
    def __init__(self, uri: str) -> None:
        self.uri = normalize_repo(uri)

    def verify(self, cert: Any) -> None:
        got = extension(cert, OID_REPO_V2, OID_REPO_V1)
        if got is None or normalize_repo(got) != self.uri:
            shown = normalize_repo(got) if got else None
            raise _error(f"source repository: got {shown!r}, expected {self.uri!r}")


class SourceRef:
    def __init__(self, ref: str) -> None:
        self.ref = ref

    def verify(self, cert: Any) -> None:
        got = extension(cert, OID_REF_V2, OID_REF_V1)
        if got != self.ref:
            raise _error(f"source ref: got {got!r}, expected {self.ref!r}")
