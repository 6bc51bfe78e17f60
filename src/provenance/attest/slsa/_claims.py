"""Checks of a verified in-toto statement: predicate type, subject digest, builder and source.

Runs only on a payload whose signature verified. sigstore-python does not compare subjects with
the artifact, so a subject must carry the artifact's sha256 here. What the statement says of
its builder, workflow and source is a claim: for certificate-signed provenance it must agree
with the certificate (`_identity`), whatever was asked for; for key-signed provenance the key
is all that is verified, and the expectations are compared with its holder's claims.
"""

from __future__ import annotations

from typing import Any

from provenance._fs import load_json_bounded
from provenance.attest.slsa import _identity, _policy
from provenance.attest.slsa._expect import Expectations
from provenance.attest.slsa._formats import PROVENANCE_TYPES, VSA_TYPES
from provenance.attest.slsa._inputs import check_inputs
from provenance.attest.slsa._result import Failure, SlsaResult
from provenance.attest.slsa_provenance import PREDICATE_TYPE, SlsaProvenance, SlsaProvenanceV02
from provenance.attest.statement import Statement, parse_statement
from provenance.errors import InputError
from provenance.signing.sigstore import match_subject

STATEMENT_TYPES = ("https://in-toto.io/Statement/v1", "https://in-toto.io/Statement/v0.1")


def decode_payload(payload: bytes, source: str) -> dict[str, Any]:
    """The signed payload as JSON, bounded.

    A duplicated key is refused (parsers disagree on which one wins), so what is checked here
    is what any other reader would see.
    """
    doc = load_json_bounded(payload, source, what="signed payload")
    if not isinstance(doc, dict) or doc.get("_type") not in STATEMENT_TYPES:
        raise InputError(source, "signed payload is not an in-toto Statement")
    return doc


def _typed(payload: bytes, source: str, ptype: str) -> Statement[Any]:
    """The statement with its SLSA predicate read strictly (unknown or mistyped fields: exit 3)."""
    cls = SlsaProvenance if ptype == PREDICATE_TYPE else SlsaProvenanceV02
    try:
        return parse_statement(payload, source, cls, read_v01=True)
    except InputError as exc:
        message = str(exc).removeprefix(f"{source}: ")
        raise InputError(source, f"not valid SLSA provenance ({ptype}): {message}") from None


def _expected_types(expect: Expectations, producer: str) -> tuple[str, ...]:
    """The predicate types accepted: `--predicate-type`, else the anchor's default.

    gh verifies `https://slsa.dev/provenance/v1` unless told otherwise; slsa-verifier accepts
    the generator's v0.2 and v1; key-signed statements may be either.
    """
    if expect.predicate_type:
        return (expect.predicate_type,)
    return (_identity.SLSA_V1,) if producer == "github-workflow" else PROVENANCE_TYPES


def _keyed_only(
    pred: _identity.Provenance, expect: Expectations, source: str | None, key: str
) -> list[Failure]:
    """Expectations a key-signed statement answers from its own claims, or cannot answer.

    A key proves only who holds it: a builder or signer workflow cannot be verified, so
    `--builder-id` and the signer flags fail (naming the key and what its holder claims).
    """
    builder = pred.builder_id
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
    commit = _identity.commit_claim(pred)
    if expect.source_digest and commit != expect.source_digest:
        failures.append(Failure("source digest (claimed)", expect.source_digest, commit))
    return failures


def _check_type(ptype: Any, result: SlsaResult, expected: tuple[str, ...]) -> bool:
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


def _check_subject(statement: Statement[Any], result: SlsaResult) -> None:
    alg = result.digest_alg
    subjects = [s.to_dict() for s in statement.subjects]
    if match_subject(subjects, alg, result.sha256) is None:
        names = [f"{s['name']}:{alg}:{s['digest'].get(alg)}" for s in subjects]
        result.failures.append(
            Failure(
                f"no subject has the artifact's {alg} (wrong artifact, or artifact modified)",
                f"{alg}:{result.sha256}",
                ", ".join(names[:5]) + (f" (+{len(names) - 5} more)" if len(names) > 5 else ""),
            )
        )


def _check_keyed(pred: _identity.Provenance, result: SlsaResult, expect: Expectations) -> None:
    """Key-signed: the expectations against what the key holder claims (labelled as claims)."""
    claimed = result.claims
    source, ref = claimed.get("source_repository"), claimed.get("source_ref")
    for name, value in (("source repository", source), ("source ref", ref)):
        if isinstance(value, list):  # the statement says two different things
            result.failures.append(
                Failure(f"{name} (claimed by the key holder): several values", None, str(value))
            )
    source = source if isinstance(source, str) else None
    ref = ref if isinstance(ref, str) else None
    result.failures += _keyed_only(pred, expect, source, result.facts["key"])
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
    payload: bytes, source: str, result: SlsaResult, expect: Expectations, *, producer: str
) -> None:
    """Add to `result` every way the verified statement disagrees with signer or expectations.

    `payload` is the signed payload (its signature verified); `result.facts` already holds
    what the signature proved (certificate facts, or the key).
    """
    doc = decode_payload(payload, source)
    if not _check_type(doc.get("predicateType"), result, _expected_types(expect, producer)):
        return
    statement = _typed(payload, source, str(doc["predicateType"]))
    pred = statement.predicate
    result.claims = _identity.claims(pred)
    if "key" in result.facts:
        _check_keyed(pred, result, expect)
    else:
        # Whatever flags were given: a statement naming another builder, workflow, repository
        # or commit than the certificate is refused (slsa-verifier refuses signer != builder).
        runner_ok = producer == "github-workflow"
        result.failures += _identity.check_builder(pred, result.facts, runner_ok=runner_ok)
        result.failures += _identity.check_workflow(pred, result.facts)
        result.failures += _identity.check_context(pred, result.facts)
    result.failures += check_inputs(pred, expect.workflow_inputs)
    _check_subject(statement, result)
