"""Checks of a verified in-toto statement: predicate type, subject digest, builder and source.

Runs only on a payload whose signature verified. sigstore-python does not compare subjects with
the artifact, so a subject must carry the artifact's sha256 here. What the statement says of
its builder, workflow and source is a claim: for certificate-signed provenance it must agree
with the certificate (`_identity`), whatever was asked for; for key-signed provenance the key
is all that is verified, and the expectations are compared with its holder's claims.
"""

from __future__ import annotations

import json
from typing import Any

from provenance.attest.slsa import _identity, _policy
from provenance.attest.slsa._expect import Expectations
from provenance.attest.slsa._formats import PROVENANCE_TYPES, VSA_TYPES
from provenance.attest.slsa._inputs import check_inputs
from provenance.attest.slsa._result import Failure, SlsaResult
from provenance.errors import InputError

STATEMENT_TYPES = ("https://in-toto.io/Statement/v1", "https://in-toto.io/Statement/v0.1")


def decode_payload(payload: bytes, source: str) -> dict[str, Any]:
    try:
        doc = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise InputError(source, "signed payload is not JSON") from None
    if not isinstance(doc, dict) or doc.get("_type") not in STATEMENT_TYPES:
        raise InputError(source, "signed payload is not an in-toto Statement")
    return doc


def _expected_types(expect: Expectations, producer: str) -> tuple[str, ...]:
    """The predicate types accepted: `--predicate-type`, else the anchor's default.

    gh verifies `https://slsa.dev/provenance/v1` unless told otherwise; slsa-verifier accepts
    the generator's v0.2 and v1; key-signed statements may be either.
    """
    if expect.predicate_type:
        return (expect.predicate_type,)
    return (_identity.SLSA_V1,) if producer == "github-workflow" else PROVENANCE_TYPES


def _keyed_only(
    statement: dict[str, Any], expect: Expectations, source: str | None, key: str
) -> list[Failure]:
    """Expectations a key-signed statement answers from its own claims, or cannot answer.

    A key proves only who holds it: a builder or signer workflow cannot be verified, so
    `--builder-id` and the signer flags fail (naming the key and what its holder claims).
    """
    builder = _identity.builder_claim(statement)
    failures = [
        Failure(
            f"{flag} (key-signed provenance has no signing certificate: it proves only its key)",
            value,
            f"key {key[:16]}, whose statement claims builder {builder}",
        )
        for flag, value in expect.certificate_only
    ]
    if expect.owner:
        owner = _policy.normalize_repo(source).split("/")[1] if source else None
        wanted = expect.owner.strip().strip("/").split("/")[-1]
        if owner is None or owner.lower() != wanted.lower():
            failures.append(Failure("source repository owner (claimed)", wanted, owner))
    commit = _identity.commit_claim(statement)
    if expect.source_digest and commit != expect.source_digest:
        failures.append(Failure("source digest (claimed)", expect.source_digest, commit))
    return failures


def _check_type(statement: dict[str, Any], result: SlsaResult, expected: tuple[str, ...]) -> bool:
    ptype = statement.get("predicateType")
    if ptype in VSA_TYPES:
        from provenance.errors import UnsupportedProvenanceError

        raise UnsupportedProvenanceError(
            result.provenance,
            f"unsupported: a SLSA verification summary attestation (VSA, {ptype}), not provenance",
        )
    if ptype not in expected:
        result.failures.append(Failure("predicate type", " or ".join(expected), str(ptype)))
        return False
    return True


def _check_subject(statement: dict[str, Any], result: SlsaResult) -> None:
    from provenance.signing.sigstore._rekor_intoto import match_subject

    alg = result.digest_alg
    if match_subject(statement.get("subject"), alg, result.sha256) is None:
        subjects = statement.get("subject")
        names = [
            f"{s.get('name')}:{alg}:{(s.get('digest') or {}).get(alg)}"
            for s in (subjects if isinstance(subjects, list) else [])
            if isinstance(s, dict)
        ]
        result.failures.append(
            Failure(
                f"no subject has the artifact's {alg} (wrong artifact, or artifact modified)",
                f"{alg}:{result.sha256}",
                ", ".join(names[:5]) + (f" (+{len(names) - 5} more)" if len(names) > 5 else ""),
            )
        )


def _check_keyed(statement: dict[str, Any], result: SlsaResult, expect: Expectations) -> None:
    """Key-signed: the expectations against what the key holder claims (labelled as claims)."""
    claimed = result.claims
    source, ref = claimed.get("source_repository"), claimed.get("source_ref")
    result.failures += _keyed_only(statement, expect, source, result.facts["key"])
    if source is None:
        result.failures.append(
            Failure("source repository (claimed by the key holder)", expect.source_uri, None)
        )
    elif expect.source_uri and _policy.normalize_repo(source) != _policy.normalize_repo(
        expect.source_uri
    ):
        result.failures.append(
            Failure(
                "source repository (claimed by the key holder)",
                _policy.repo_url(expect.source_uri),
                _policy.repo_url(source),
            )
        )
    if expect.ref and ref != expect.ref:
        result.failures.append(Failure("source ref (claimed by the key holder)", expect.ref, ref))
    if expect.versioned_tag and not _policy.versioned_tag_matches(ref, expect.versioned_tag):
        result.failures.append(
            Failure(
                "source versioned tag (claimed by the key holder)",
                f"refs/tags/{expect.versioned_tag}",
                ref,
            )
        )


def check_statement(
    statement: dict[str, Any], result: SlsaResult, expect: Expectations, *, producer: str
) -> None:
    """Add to `result` every way the verified statement disagrees with signer or expectations.

    `result.facts` already holds what the signature proved (certificate facts, or the key).
    """
    if not _check_type(statement, result, _expected_types(expect, producer)):
        return
    result.claims = _identity.claims(statement)
    if "key" in result.facts:
        _check_keyed(statement, result, expect)
    else:
        # Whatever flags were given: a statement naming another builder, workflow, repository
        # or commit than the certificate is refused (slsa-verifier refuses signer != builder).
        runner_ok = producer == "github-workflow"
        result.failures += _identity.check_builder(statement, result.facts, runner_ok=runner_ok)
        result.failures += _identity.check_workflow(statement, result.facts)
        result.failures += _identity.check_context(statement, result.facts)
    result.failures += check_inputs(statement, expect.workflow_inputs)
    _check_subject(statement, result)
