"""Certificate policies for SLSA provenance, built on sigstore-python's policy objects.

sigstore's `AllOf`, `AnyOf`, `OIDCIssuer(V2)`, `OIDCSourceRepositoryURI`, `OIDCSourceRepositoryRef`
and `OIDCSourceRepositoryOwnerURI` do the exact comparisons; the classes here add what sigstore has
no policy for (slsa-verifier's builder-id matching with or without a ref, gh's signer-workflow
prefix match, versioned tags). Each check is wrapped in a `Check` that names what it compares,
so `_bundle.Collect` (an `AllOf`) can run them all during sigstore's verification and report
every mismatch as a got / expected `Failure` instead of the first one only. sigstore is imported
lazily: this module is imported by `--key` verification, which works without sigstore.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from cryptography import x509
from cryptography.x509 import ObjectIdentifier

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"
GENERATOR_REPO = "https://github.com/slsa-framework/slsa-github-generator"
GENERATOR_WORKFLOWS = GENERATOR_REPO + "/.github/workflows/"
# The slsa-github-generator builders slsa-verifier trusts for `verify-artifact`.
TRUSTED_WORKFLOWS = (
    "generator_generic_slsa3.yml",
    "builder_go_slsa3.yml",
)
# Builders slsa-verifier verifies through other paths this verifier does not implement.
DELEGATOR_WORKFLOWS = (
    "delegator_generic_slsa3.yml",
    "delegator_lowperms-generic_slsa3.yml",
)
OTHER_GENERATOR_WORKFLOWS = (
    "generator_container_slsa3.yml",
    "builder_nodejs_slsa3.yml",
    "builder_container-based_slsa3.yml",
    "builder_gradle_slsa3.yml",
    "builder_maven_slsa3.yml",
)
OID_ISSUER_V1 = ObjectIdentifier("1.3.6.1.4.1.57264.1.1")
OID_ISSUER_V2 = ObjectIdentifier("1.3.6.1.4.1.57264.1.8")
OID_REPO_V1 = ObjectIdentifier("1.3.6.1.4.1.57264.1.5")
OID_REF_V1 = ObjectIdentifier("1.3.6.1.4.1.57264.1.6")
OID_REPO_V2 = ObjectIdentifier("1.3.6.1.4.1.57264.1.12")
OID_REF_V2 = ObjectIdentifier("1.3.6.1.4.1.57264.1.14")
OID_OWNER_V2 = ObjectIdentifier("1.3.6.1.4.1.57264.1.16")
OID_RUNNER_V2 = ObjectIdentifier("1.3.6.1.4.1.57264.1.11")
GITHUB_HOSTED = "github-hosted"  # Fulcio RunnerEnvironment of GitHub's own runners
_RELEASE_TAG = re.compile(r"refs/tags/v\d+\.\d+\.\d+\Z")
_VERSION = re.compile(r"v?(\d+)(?:\.(\d+))?(?:\.(\d+))?\Z")


class CertificatePolicy(Protocol):
    """sigstore's `VerificationPolicy` protocol, typed: raise VerificationError on failure."""

    def verify(self, cert: x509.Certificate) -> None: ...


def _error(message: str) -> Exception:
    from sigstore.errors import VerificationError

    return VerificationError(message)


def extension(
    cert: x509.Certificate, v2: ObjectIdentifier, v1: ObjectIdentifier | None = None
) -> str | None:
    """A Fulcio extension's value, preferring the DER-encoded v2 form over the raw v1 one."""
    from cryptography.hazmat import asn1

    try:
        ext = cert.extensions.get_extension_for_oid(v2).value
        if isinstance(ext, x509.UnrecognizedExtension):
            return str(asn1.decode_der(str, ext.value))
    except (x509.ExtensionNotFound, ValueError):
        pass
    if v1 is None:
        return None
    try:
        ext = cert.extensions.get_extension_for_oid(v1).value
    except x509.ExtensionNotFound:
        return None
    if isinstance(ext, x509.UnrecognizedExtension):
        return ext.value.decode("utf-8", "replace")
    return None


def identity(cert: x509.Certificate) -> str | None:
    """The certificate's URI SAN: the workflow (with @ref) that signed, or None."""
    try:
        sans = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return None
    uris = sans.get_values_for_type(x509.UniformResourceIdentifier)
    return str(uris[0]) if uris else None


def normalize_repo(uri: str) -> str:
    """`github.com/ORG/REPO` for any of: https://…, git+https://…, ORG/REPO, trailing .git."""
    uri = uri.strip().removeprefix("git+").removeprefix("https://").removeprefix("http://")
    uri = uri.split("@", 1)[0].rstrip("/").removesuffix(".git")
    return uri if uri.count("/") >= 2 else f"github.com/{uri}"


def repo_url(uri: str) -> str:
    """`https://github.com/ORG/REPO`: the form Fulcio writes in SourceRepositoryURI."""
    return "https://" + normalize_repo(uri)


def workflow_url(workflow: str) -> str:
    """A signer workflow as gh accepts it (`[host/]ORG/REPO/.github/workflows/F.yml[@ref]`)."""
    workflow = workflow.strip().removeprefix("https://").removeprefix("http://")
    if not workflow.split("/", 1)[0].count("."):
        workflow = "github.com/" + workflow
    return "https://" + workflow


def _full_ref(ref: str) -> str:
    """slsa-verifier's short builder refs (`@v2.1.0`) name tags."""
    return (
        ref if ref.startswith("refs/") or re.fullmatch(r"[0-9a-f]{40}", ref) else f"refs/tags/{ref}"
    )


def builder_matches(actual: str, wanted: str) -> bool:
    """slsa-verifier semantics: without a ref the workflow must match; with one, the ref too."""
    wanted = workflow_url(wanted)
    path, _, ref = actual.partition("@")
    want_path, at, want_ref = wanted.partition("@")
    if path != want_path:
        return False
    return not at or _full_ref(want_ref) == ref


def generator_workflow(san: str | None) -> str | None:
    """The slsa-github-generator workflow file name a certificate identity names, if any."""
    if not san or not san.startswith(GENERATOR_WORKFLOWS):
        return None
    return san.removeprefix(GENERATOR_WORKFLOWS).split("@", 1)[0]


def parse_version(tag: str) -> tuple[int, ...] | None:
    m = _VERSION.match(tag.strip())
    return tuple(int(g) for g in m.groups() if g is not None) if m else None


def versioned_tag_matches(ref: str | None, wanted: str) -> bool:
    """slsa-verifier's --source-versioned-tag: the given components equal, missing ones are 0."""
    if not ref or not ref.startswith("refs/tags/v"):  # slsa-verifier: a `v` semver tag only
        return False
    got, want = parse_version(ref.removeprefix("refs/tags/")), parse_version(wanted)
    if got is None or want is None:
        return False
    padded = got + (0,) * (3 - len(got))
    return padded[: len(want)] == want


@dataclass(frozen=True)
class Check:
    """One named comparison of the certificate: `policy` decides, `read` shows what it saw."""

    what: str
    expected: str
    policy: CertificatePolicy
    read: Callable[[x509.Certificate], str | None]

    def verify(self, cert: x509.Certificate) -> None:
        self.policy.verify(cert)


class SignerWorkflow:
    """The certificate identity is this workflow (gh --signer-workflow, slsa --builder-id).

    The workflow is given with a full ref, a short tag ref (`@v2.1.0`), a commit SHA, or no ref.
    """

    def __init__(self, workflow: str) -> None:
        self.workflow = workflow

    def verify(self, cert: x509.Certificate) -> None:
        san = identity(cert)
        if san is None or not builder_matches(san, self.workflow):
            raise _error(f"signer workflow: got {san!r}, expected {self.workflow!r}")


class TrustedGenerator:
    """The identity is a trusted slsa-github-generator builder at a release tag."""

    def verify(self, cert: x509.Certificate) -> None:
        san = identity(cert) or ""
        name = generator_workflow(san)
        ref = san.partition("@")[2]
        if name not in TRUSTED_WORKFLOWS or not _RELEASE_TAG.match(ref):
            raise _error(f"untrusted builder {san!r}")


class WorkflowUnder:
    """The signing workflow lives under this URL prefix, compared case-insensitively.

    As gh's `(?i)^https://github.com/OWNER[/REPO]/` does: gh's default (the source repository
    or owner) and its `--signer-repo`.
    """

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix

    def verify(self, cert: x509.Certificate) -> None:
        if not (identity(cert) or "").lower().startswith(self.prefix.lower()):
            raise _error(f"signed by a workflow outside {self.prefix}")


class RefMatches:
    """Tag / branch / versioned tag of the source ref (Fulcio SourceRepositoryRef)."""

    def __init__(self, match: Callable[[str | None], bool]) -> None:
        self.match = match

    def verify(self, cert: x509.Certificate) -> None:
        if not self.match(extension(cert, OID_REF_V2, OID_REF_V1)):
            raise _error("source ref does not match")


def issuer_check(issuer: str) -> Check:
    from sigstore.verify.policy import AnyOf, OIDCIssuer, OIDCIssuerV2

    return Check(
        "certificate OIDC issuer",
        issuer,
        AnyOf([OIDCIssuerV2(issuer), OIDCIssuer(issuer)]),
        lambda c: extension(c, OID_ISSUER_V2, OID_ISSUER_V1),
    )


def source_check(repo: str) -> Check:
    from sigstore.verify.policy import OIDCSourceRepositoryURI

    return Check(
        "source repository",
        repo_url(repo),
        OIDCSourceRepositoryURI(repo_url(repo)),
        lambda c: extension(c, OID_REPO_V2, OID_REPO_V1),
    )


def _owner(owner: str) -> str:
    return owner.strip().strip("/").split("/")[-1]


def owner_check(owner: str) -> Check:
    from sigstore.verify.policy import OIDCSourceRepositoryOwnerURI

    url = "https://github.com/" + _owner(owner)
    return Check(
        "source repository owner",
        url,
        OIDCSourceRepositoryOwnerURI(url),
        lambda c: extension(c, OID_OWNER_V2),
    )


def _ref(cert: x509.Certificate) -> str | None:
    return extension(cert, OID_REF_V2, OID_REF_V1)


def ref_checks(branch: str | None, tag: str | None, versioned_tag: str | None) -> list[Check]:
    from sigstore.verify.policy import OIDCSourceRepositoryRef

    checks = []
    if branch:
        ref = f"refs/heads/{branch.removeprefix('refs/heads/')}"
        checks.append(Check("source branch", ref, OIDCSourceRepositoryRef(ref), _ref))
    if tag:
        ref = f"refs/tags/{tag.removeprefix('refs/tags/')}"
        checks.append(Check("source tag", ref, OIDCSourceRepositoryRef(ref), _ref))
    if versioned_tag:
        checks.append(
            Check(
                "source versioned tag",
                f"refs/tags/{versioned_tag} (semver prefix)",
                RefMatches(lambda ref: versioned_tag_matches(ref, versioned_tag)),
                _ref,
            )
        )
    return checks


def signer_repo_check(repo: str) -> Check:
    """The signing (reusable) workflow is a workflow of this repository (gh --signer-repo)."""
    prefix = repo_url(repo) + "/"
    return Check("signer repository", prefix + "…", WorkflowUnder(prefix), identity)


class _ExtensionPolicy(CertificatePolicy, Protocol):
    """sigstore's single-extension policies (`OIDCBuildSignerDigest`, …): one OID, one value."""

    oid: ObjectIdentifier

    def __init__(self, value: str) -> None: ...


def _extension_check(what: str, expected: str, policy: type[_ExtensionPolicy]) -> Check:
    """A sigstore single-extension policy (v2, DER string) with the value it read."""
    return Check(what, expected, policy(expected), lambda c: extension(c, policy.oid))


def signer_digest_check(digest: str) -> Check:
    """The signing workflow's commit, Fulcio Build Signer Digest (gh --signer-digest)."""
    from sigstore.verify.policy import OIDCBuildSignerDigest

    return _extension_check("signer digest", digest, OIDCBuildSignerDigest)


def source_ref_check(ref: str) -> Check:
    """The exact git ref of the run, Fulcio Source Repository Ref (gh --source-ref)."""
    from sigstore.verify.policy import OIDCSourceRepositoryRef

    return Check("source ref", ref, OIDCSourceRepositoryRef(ref), _ref)


def source_digest_check(digest: str) -> Check:
    """The source commit, Fulcio Source Repository Digest (gh --source-digest)."""
    from sigstore.verify.policy import OIDCSourceRepositoryDigest

    return _extension_check("source digest", digest, OIDCSourceRepositoryDigest)


def hosted_runner_check() -> Check:
    """Fulcio Runner Environment is `github-hosted` (gh --deny-self-hosted-runners)."""
    from sigstore.verify.policy import OIDCRunnerEnvironment

    what = "runner environment (self-hosted runners denied)"
    return _extension_check(what, GITHUB_HOSTED, OIDCRunnerEnvironment)


def signer_check(workflow: str, what: str = "signer workflow") -> Check:
    return Check(what, workflow_url(workflow), SignerWorkflow(workflow), identity)


def trusted_generator_check() -> Check:
    expected = GENERATOR_WORKFLOWS + "{" + ",".join(TRUSTED_WORKFLOWS) + "}@refs/tags/vX.Y.Z"
    return Check("builder (trusted slsa-github-generator)", expected, TrustedGenerator(), identity)


def same_repo_signer_check(repo: str | None, owner: str | None) -> Check:
    prefix = repo_url(repo) + "/" if repo else f"https://github.com/{_owner(owner or '')}/"
    return Check(
        "signer workflow (a workflow outside the source repository signed: a reusable "
        "workflow must be named with --signer-workflow or --builder-id)",
        prefix + ".github/workflows/…",
        WorkflowUnder(prefix),
        identity,
    )
