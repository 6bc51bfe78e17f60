"""Checks of a verified in-toto statement: predicate type, subject digest, builder and source.

Runs only on a payload whose signature verified. sigstore-python does not compare subjects with
the artifact, so a subject must carry the artifact's sha256 here; the predicate's builder id and
source must agree with the signer (keyless) or with the expectations (key-signed).
"""

from __future__ import annotations

import json
from typing import Any

from provenance.errors import InputError
from provenance.slsa import _policy
from provenance.slsa._expect import Expectations
from provenance.slsa._formats import PROVENANCE_TYPES, VSA_TYPES, subject_matches
from provenance.slsa._inputs import check_inputs
from provenance.slsa._result import Failure, SlsaResult

STATEMENT_TYPES = ("https://in-toto.io/Statement/v1", "https://in-toto.io/Statement/v0.1")
SLSA_V1 = "https://slsa.dev/provenance/v1"


def decode_payload(payload: bytes, source: str) -> dict[str, Any]:
    try:
        doc = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise InputError(source, "signed payload is not JSON") from None
    if not isinstance(doc, dict) or doc.get("_type") not in STATEMENT_TYPES:
        raise InputError(source, "signed payload is not an in-toto Statement")
    return doc


def _dig(doc: Any, *keys: str) -> Any:
    for key in keys:
        doc = doc.get(key) if isinstance(doc, dict) else None
    return doc


def predicate_builder(statement: dict[str, Any]) -> str | None:
    pred = statement.get("predicate")
    if statement.get("predicateType") == SLSA_V1:
        found = _dig(pred, "runDetails", "builder", "id")
    else:
        found = _dig(pred, "builder", "id")
    return found if isinstance(found, str) else None


def predicate_source(statement: dict[str, Any]) -> str | None:
    pred = statement.get("predicate")
    if statement.get("predicateType") == SLSA_V1:
        ext = _dig(pred, "buildDefinition", "externalParameters")
        repo = _dig(ext, "repository") or _dig(ext, "workflow", "repository")
        if not isinstance(repo, str):  # slsa-github-generator v1 predicates (BYOB, container)
            repo = _dig(ext, "source", "uri")
    else:
        repo = _dig(pred, "invocation", "configSource", "uri")
    return repo if isinstance(repo, str) else None


def predicate_ref(statement: dict[str, Any]) -> str | None:
    """The source ref the predicate names (v0.2: after the `@` of `configSource.uri`)."""
    pred = statement.get("predicate")
    if statement.get("predicateType") == SLSA_V1:
        ext = _dig(pred, "buildDefinition", "externalParameters")
        ref = _dig(ext, "ref") or _dig(ext, "workflow", "ref")
    else:
        uri = _dig(pred, "invocation", "configSource", "uri")
        ref = uri.partition("@")[2] or None if isinstance(uri, str) else None
    return ref if isinstance(ref, str) else None


def _expected_types(expect: Expectations, producer: str) -> tuple[str, ...]:
    """The predicate types accepted: `--predicate-type`, else the anchor's default.

    gh verifies `https://slsa.dev/provenance/v1` unless told otherwise; slsa-verifier accepts
    the generator's v0.2 and v1; key-signed statements may be either.
    """
    if expect.predicate_type:
        return (expect.predicate_type,)
    return (SLSA_V1,) if producer == "github-workflow" else PROVENANCE_TYPES


def predicate_commit(statement: dict[str, Any]) -> str | None:
    """The source commit the predicate names (v1: a resolved dependency's gitCommit)."""
    pred = statement.get("predicate")
    if statement.get("predicateType") == SLSA_V1:
        deps = _dig(pred, "buildDefinition", "resolvedDependencies")
        commits = [_dig(d, "digest", "gitCommit") for d in deps] if isinstance(deps, list) else []
        found = next((c for c in commits if isinstance(c, str)), None)
    else:
        found = _dig(pred, "invocation", "configSource", "digest", "sha1")
    return found if isinstance(found, str) else None


def _keyed_only(
    statement: dict[str, Any], expect: Expectations, source: str | None
) -> list[Failure]:
    """Expectations a key-signed statement answers from its own claims, or cannot answer."""
    failures = [
        Failure(f"{flag} (key-signed provenance has no signing certificate)", "a certificate", None)
        for flag in expect.certificate_only
    ]
    if expect.owner:
        owner = _policy.normalize_repo(source).split("/")[1] if source else None
        wanted = expect.owner.strip().strip("/").split("/")[-1]
        if owner is None or owner.lower() != wanted.lower():
            failures.append(Failure("source repository owner", wanted, owner))
    if expect.source_digest and predicate_commit(statement) != expect.source_digest:
        failures.append(Failure("source digest", expect.source_digest, predicate_commit(statement)))
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
    if not subject_matches(statement, result.sha256):
        names = [
            f"{s.get('name')}:sha256:{_dig(s, 'digest', 'sha256')}"
            for s in statement.get("subject") or []
            if isinstance(s, dict)
        ]
        result.failures.append(
            Failure(
                "no subject has the artifact's sha256 (wrong artifact, or artifact modified)",
                f"sha256:{result.sha256}",
                ", ".join(names[:5]) + (f" (+{len(names) - 5} more)" if len(names) > 5 else ""),
            )
        )


def check_statement(
    statement: dict[str, Any],
    result: SlsaResult,
    expect: Expectations,
    *,
    signer: str | None,
    producer: str,
) -> None:
    """Add to `result` every way the verified statement disagrees with signer or expectations."""
    if not _check_type(statement, result, _expected_types(expect, producer)):
        return
    builder = predicate_builder(statement)
    result.builder_id = builder
    source = predicate_source(statement)
    if producer == "slsa-github-generator" and builder != signer:
        # slsa-verifier: the builder the predicate claims is the workflow that signed.
        result.failures.append(Failure("predicate builder id (vs the signer)", signer, builder))
    if signer is None:  # key-signed: source, ref and builder come from the statement itself
        result.source, result.ref = source, predicate_ref(statement)
        result.failures += _keyed_only(statement, expect, source)
        if expect.builder_id and not (
            builder and _policy.builder_matches(builder, expect.builder_id)
        ):
            result.failures.append(Failure("builder id", expect.builder_id, builder))
        if source is None:
            result.failures.append(Failure("source repository", expect.source_uri, None))
        elif expect.source_uri and _policy.normalize_repo(source) != _policy.normalize_repo(
            expect.source_uri
        ):
            result.failures.append(
                Failure(
                    "source repository",
                    _policy.repo_url(expect.source_uri),
                    _policy.repo_url(source),
                )
            )
        if expect.ref and result.ref != expect.ref:
            result.failures.append(Failure("source ref", expect.ref, result.ref))
        if expect.versioned_tag and not _policy.versioned_tag_matches(
            result.ref, expect.versioned_tag
        ):
            result.failures.append(
                Failure("source versioned tag", f"refs/tags/{expect.versioned_tag}", result.ref)
            )
    elif (
        producer == "slsa-github-generator"
        and source is not None
        and result.source is not None
        and _policy.normalize_repo(source) != _policy.normalize_repo(result.source)
    ):
        # slsa-verifier: the generator's predicate must name the repository the certificate
        # names. (gh checks the certificate only: other workflows' predicates are their own.)
        result.failures.append(
            Failure(
                "source in the predicate (vs the certificate)",
                _policy.repo_url(result.source),
                _policy.repo_url(source),
            )
        )
    result.failures += check_inputs(statement, expect.workflow_inputs)
    _check_subject(statement, result)
