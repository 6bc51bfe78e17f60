"""Keyless verification of a Sigstore bundle with sigstore-python, offline, then the SLSA checks.

sigstore-python does the cryptography against a pinned trusted root: certificate chain at the
signing time, SCT, transparency-log inclusion proof / promise or RFC 3161 timestamps, the DSSE
signature, and that the log entry matches the envelope. The certificate checks (issuer, source,
ref, signer workflow) run as sigstore policy objects inside that verification; `Collect`
records every mismatch so the outcome lists them all, got vs expected. What sigstore-python
leaves to callers is done here: the payload type, the predicate type, a subject equal to the
artifact's digest, and the predicate's claims agreeing with the certificate.

Two producers are told apart by the signing identity (certificate SAN):
- slsa-github-generator builders (slsa-verifier `verify-artifact` semantics): the builder must
  be a trusted generator at a release tag, `--builder-id` narrows it, the predicate's builder
  id must equal the signer;
- any other GitHub workflow, e.g. `actions/attest-build-provenance` or BCR's publishing
  workflows (`gh attestation verify` / slsa-verifier `verify-github-attestation` semantics):
  the signer must be the `--signer-workflow`/`--builder-id` given, or, when none is given, a
  workflow of the source repository itself: an attestation made in a reusable workflow needs
  the signer named, a repository check alone is not enough.
"""

from __future__ import annotations

import json
from typing import Any

from cryptography import x509
from sigstore.errors import Error as SigstoreError
from sigstore.errors import VerificationError
from sigstore.models import Bundle, TrustedRoot
from sigstore.verify import Verifier
from sigstore.verify.policy import AllOf

from provenance._fs import UTC_FORMAT
from provenance.attest.slsa import _policy
from provenance.attest.slsa._claims import check_statement
from provenance.attest.slsa._expect import Expectations
from provenance.attest.slsa._formats import Provenance
from provenance.attest.slsa._identity import certificate_facts
from provenance.attest.slsa._result import Failure, SlsaResult
from provenance.errors import InputError
from provenance.signing.sigstore import BundleRefused, route, verify_offline

IN_TOTO = "application/vnd.in-toto+json"


class Collect(AllOf):
    """sigstore's `AllOf` whose children are `Check`s: every failure recorded, none raised.

    sigstore calls the policy midway through its verification; raising there would hide
    whether the signature, log entry and chain hold. Recording lets verification finish; the
    caller refuses when `failures` is non-empty.
    """

    def __init__(self, checks: list[_policy.Check]) -> None:
        super().__init__(list(checks))
        self.checks = tuple(checks)
        self.failures: list[Failure] = []
        self.called = False

    def verify(self, cert: x509.Certificate) -> None:
        if not self.checks:  # as AllOf: an empty policy is never trivially valid
            raise VerificationError("no certificate policy to verify")
        self.called = True
        for check in self.checks:
            try:
                check.verify(cert)
            except VerificationError:
                self.failures.append(Failure(check.what, check.expected, check.read(cert)))


def load_trusted_root(path: str) -> TrustedRoot:
    """A trusted root file, GitHub's (no transparency or CT logs) included."""
    from provenance.signing.sigstore import load_root

    try:
        return load_root(path)
    except (OSError, ValueError, SigstoreError) as exc:
        raise InputError(
            path, f"not a Sigstore trusted root ({str(exc).splitlines()[0]})"
        ) from None


def _checks(expect: Expectations, san: str | None) -> tuple[str, list[_policy.Check]]:
    checks = [_policy.issuer_check(expect.issuer)]
    if expect.source_uri:
        checks.append(_policy.source_check(expect.source_uri))
    if expect.owner:
        checks.append(_policy.owner_check(expect.owner))
    checks += _policy.ref_checks(expect.branch, expect.tag, expect.versioned_tag)
    checks += _gh_checks(expect)
    if _policy.generator_workflow(san) is not None:
        producer = "slsa-github-generator"
        checks.append(_policy.trusted_generator_check())
        if expect.builder_id:
            checks.append(_policy.signer_check(expect.builder_id, "builder id"))
    else:
        producer = "github-workflow"
        if expect.builder_id:
            checks.append(_policy.signer_check(expect.builder_id, "builder id"))
        elif not (expect.signer_workflow or expect.signer_repo):
            checks.append(_policy.same_repo_signer_check(expect.source_uri, expect.owner))
    if expect.signer_workflow:
        checks.append(_policy.signer_check(expect.signer_workflow))
    return producer, checks


def _gh_checks(expect: Expectations) -> list[_policy.Check]:
    """The certificate checks of gh's flags that have no slsa-verifier counterpart."""
    checks = []
    if expect.source_ref:
        checks.append(_policy.source_ref_check(expect.source_ref))
    if expect.source_digest:
        checks.append(_policy.source_digest_check(expect.source_digest))
    if expect.signer_repo:
        checks.append(_policy.signer_repo_check(expect.signer_repo))
    if expect.signer_digest:
        checks.append(_policy.signer_digest_check(expect.signer_digest))
    if expect.deny_self_hosted:
        checks.append(_policy.hosted_runner_check())
    return checks


def _crypto_failure(message: str, collect: Collect, root: str) -> Failure:
    """Name what did not verify.

    Before sigstore reaches the policy it establishes time and builds the certificate chain: a
    failure there means the material does not lead to the trusted root given (staging, another
    instance, or a forged chain).
    """
    first = message.splitlines()[0] if message else "verification failed"
    if not collect.called:
        return Failure(
            f"trusted root: the certificate chain or timestamps do not lead to {root}",
            None,
            first,
        )
    return Failure("signature / transparency log", None, first)


def _leaf_identity(doc: dict[str, Any]) -> str | None:
    """The signing identity of a bundle's leaf certificate, to choose the policy.

    Not trusted: the policy is then verified against the certificate verification established.
    """
    from provenance.attest.slsa._formats import _bundle_cert, _san_of

    return _san_of(_bundle_cert(doc))


def verify_bundle(
    prov: Provenance, result: SlsaResult, expect: Expectations, root: TrustedRoot, root_name: str
) -> bool:
    """Verify one bundle into `result`; True when its signature was authentic (checks may fail).

    Bundles sigstore-python cannot verify offline take the project's own paths (`_offline`):
    timestamp-only bundles (only under a root without transparency logs, GitHub's) and
    `intoto/0.0.2` log entries (through the signed entry timestamp).
    """
    path = route(prov.document)
    if path is None:
        try:
            bundle = Bundle.from_json(json.dumps(prov.document))
        except (ValueError, TypeError, SigstoreError) as exc:
            message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise InputError(prov.source, f"malformed Sigstore bundle: {message}") from None
        san = _policy.identity(bundle.signing_certificate)
    else:
        san = _leaf_identity(prov.document)
    producer, checks = _checks(expect, san)
    result.producer = producer
    collect = Collect(checks)
    verified = None
    try:
        if path is None:
            ptype, payload = Verifier(trusted_root=root).verify_dsse(bundle, collect)
            cert = bundle.signing_certificate
        else:
            verified = verify_offline(prov.document, root, source=prov.source, policy=collect)
            assert verified is not None  # routed above
            ptype, payload, cert = verified.payload_type, verified.payload, verified.certificate
    except BundleRefused as exc:
        result.failures.append(Failure(f"{path} bundle", None, str(exc)))
        return False
    except SigstoreError as exc:
        result.failures.append(_crypto_failure(str(exc), collect, root_name))
        return False
    except ValueError as exc:  # fields sigstore decodes mid-verification (e.g. binascii.Error)
        message = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(prov.source, f"malformed Sigstore bundle: {message}") from None
    # Authentic from here on: what the certificate states is what was verified.
    result.facts = certificate_facts(cert)
    if verified is not None:
        result.facts["signed_at"] = ", ".join(t.strftime(UTC_FORMAT) for t in verified.times)
        result.facts["time_source"] = verified.time_source
    result.failures += collect.failures
    if ptype != IN_TOTO:
        result.failures.append(Failure("DSSE payload type", IN_TOTO, ptype))
        return True
    check_statement(payload, prov.source, result, expect, producer=producer)
    return True
