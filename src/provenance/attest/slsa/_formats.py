"""Recognise a provenance file by its content, never by its name, and say what it is.

Accepted: Sigstore bundles (media types 0.1, 0.2, 0.3 and `bundle.v0.3+json`) carrying a DSSE
envelope, alone, as lines of an `.intoto.jsonl` or wrapped as `{"bundle": ...}` (GitHub's API);
key-signed DSSE envelopes. Everything else is refused as unsupported (exit 3) with a name for
what it is: bare DSSE envelopes with a Fulcio certificate (slsa-github-generator before v2.1.0:
their Rekor entry must be fetched online), BYOB/delegator provenance, npm registry attestation
documents, Sigstore artifact signatures, VSAs, log entries sigstore-python cannot check offline.
The statement inside is read here only to describe and to pick a candidate: nothing in it is
trusted before the signature is verified (verify.py).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

from provenance._fs import load_json_bounded, read_bounded
from provenance.errors import InputError, UnsupportedProvenanceError

MAX_BYTES = 64 * 1024 * 1024
BUNDLE_MEDIA_TYPES = (
    "application/vnd.dev.sigstore.bundle.v0.3+json",
    "application/vnd.dev.sigstore.bundle+json;version=0.3",
    "application/vnd.dev.sigstore.bundle+json;version=0.2",
    "application/vnd.dev.sigstore.bundle+json;version=0.1",
)
PROVENANCE_TYPES = ("https://slsa.dev/provenance/v1", "https://slsa.dev/provenance/v0.2")
VSA_TYPES = (
    "https://slsa.dev/verification_summary/v1",
    "https://slsa.dev/verification_summary/v0.2",
)
# Log entry kinds sigstore-python verifies offline for DSSE envelopes.
OFFLINE_ENTRIES = (("dsse", "0.0.1"), ("hashedrekord", "0.0.2"))
# ... and those verified here: intoto/0.0.2 through its signed entry timestamp (`_rekor_intoto`).
VERIFIED_ENTRIES = (*OFFLINE_ENTRIES, ("intoto", "0.0.2"))

__all__ = ["Provenance", "ProvenanceFile", "UnsupportedProvenanceError", "load"]


@dataclass(frozen=True)
class Provenance:
    """One provenance document: `kind` is "bundle" (Sigstore) or "dsse" (key-signed)."""

    kind: str
    document: dict[str, Any]
    source: str
    statement: dict[str, Any] = field(default_factory=dict)  # unverified: for selection only

    def claims(self, digest: str, alg: str = "sha256") -> bool:
        """Whether the (unverified) statement names this digest: which candidate to try first."""
        subjects = self.statement.get("subject")
        return isinstance(subjects, list) and any(
            isinstance(s, dict)
            and isinstance(s.get("digest"), dict)
            and s["digest"].get(alg) == digest
            for s in subjects
        )


def _peek_statement(envelope: dict[str, Any], source: str) -> dict[str, Any]:
    payload = envelope.get("payload")
    if not isinstance(payload, str):
        raise InputError(source, "DSSE envelope has no payload")
    try:
        statement = json.loads(base64.b64decode(payload, validate=True))
    except (binascii.Error, ValueError, RecursionError):
        raise InputError(source, "DSSE payload is not base64-encoded JSON") from None
    if not isinstance(statement, dict):
        raise InputError(source, "DSSE payload is not an in-toto statement")
    ptype = statement.get("predicateType")
    if ptype in VSA_TYPES:
        raise UnsupportedProvenanceError(
            source,
            f"unsupported: a SLSA verification summary attestation (VSA, {ptype}), not "
            "build provenance (slsa-verifier verifies it with `verify-vsa`)",
        )
    if ptype not in PROVENANCE_TYPES:
        raise UnsupportedProvenanceError(
            source, f"unsupported: predicate type {ptype!r} is not SLSA provenance v0.2 or v1"
        )
    return statement


def _san_of(der_b64: Any) -> str | None:
    """The certificate identity, to name an unsupported builder (never used to trust)."""
    from cryptography import x509

    from provenance.attest.slsa._policy import identity

    try:
        return identity(x509.load_der_x509_certificate(base64.b64decode(der_b64)))
    except (ValueError, TypeError, binascii.Error):
        return None


def _bundle_cert(doc: dict[str, Any]) -> Any:
    vm = doc.get("verificationMaterial")
    if not isinstance(vm, dict):
        return None
    cert = vm.get("certificate")
    if isinstance(cert, dict):
        return cert.get("rawBytes")
    chain = (vm.get("x509CertificateChain") or {}).get("certificates")
    if isinstance(chain, list) and chain and isinstance(chain[0], dict):
        return chain[0].get("rawBytes")
    return None


def _classify_bundle(doc: dict[str, Any], source: str) -> Provenance:
    from provenance.attest.slsa._policy import (
        DELEGATOR_WORKFLOWS,
        OTHER_GENERATOR_WORKFLOWS,
        generator_workflow,
    )

    media = doc["mediaType"]
    if media not in BUNDLE_MEDIA_TYPES:
        raise UnsupportedProvenanceError(
            source, f"unsupported: unknown Sigstore bundle version {media!r}"
        )
    if "messageSignature" in doc and "dsseEnvelope" not in doc:
        raise UnsupportedProvenanceError(
            source,
            "unsupported: a Sigstore artifact signature (message signature), not an "
            "attestation; check it with `sigstore verify`",
        )
    envelope = doc.get("dsseEnvelope")
    if not isinstance(envelope, dict):
        raise InputError(source, "Sigstore bundle has no DSSE envelope")
    vm = doc.get("verificationMaterial")
    if not isinstance(vm, dict):
        raise InputError(source, "Sigstore bundle has no verification material")
    if "publicKey" in vm and _bundle_cert(doc) is None:
        raise InputError(
            source, "Sigstore bundle has no signing certificate (only a public-key hint)"
        )
    raw_cert = _bundle_cert(doc)
    if not raw_cert:
        raise InputError(source, "Sigstore bundle has no signing certificate")
    workflow = generator_workflow(_san_of(raw_cert))
    if workflow in DELEGATOR_WORKFLOWS:
        raise UnsupportedProvenanceError(
            source,
            f"unsupported: BYOB provenance from the slsa-github-generator delegator "
            f"({workflow}); slsa-verifier verifies it with a --builder-id of the inner builder",
        )
    if workflow in OTHER_GENERATOR_WORKFLOWS:
        raise UnsupportedProvenanceError(
            source,
            f"unsupported: provenance from the slsa-github-generator builder {workflow} "
            "(container images, npm packages and BYOB builders: slsa-verifier `verify-image`, "
            "`verify-npm-package` or its BYOB path)",
        )
    entries = vm.get("tlogEntries") or []  # none: timestamp-only (GitHub's own instance)
    if not isinstance(entries, list):
        raise InputError(source, "Sigstore bundle: tlogEntries is not a list")
    for entry in entries:
        kv = entry.get("kindVersion") if isinstance(entry, dict) else None
        kind = (kv.get("kind"), kv.get("version")) if isinstance(kv, dict) else (None, None)
        if kind not in VERIFIED_ENTRIES:
            raise UnsupportedProvenanceError(
                source,
                f"unsupported: transparency-log entry type {kind[0]}/{kind[1]} cannot be "
                "verified offline by this verifier (only dsse/0.0.1, hashedrekord/0.0.2 and "
                "intoto/0.0.2)",
            )
    return Provenance("bundle", doc, source, _peek_statement(envelope, source))


def _classify(doc: Any, source: str) -> Provenance:
    if isinstance(doc, dict) and isinstance(doc.get("attestations"), list):
        raise UnsupportedProvenanceError(
            source,
            "unsupported: an npm registry attestations document; extract one bundle "
            "(`.attestations[].bundle`) and verify that",
        )
    if isinstance(doc, dict) and isinstance(doc.get("bundle"), dict):
        doc = doc["bundle"]
    if not isinstance(doc, dict):
        raise InputError(source, "not a JSON object")
    media = doc.get("mediaType")
    if isinstance(media, str) and media.startswith("application/vnd.dev.sigstore.bundle"):
        return _classify_bundle(doc, source)
    if {"payload", "payloadType", "signatures"} <= doc.keys():
        sigs = doc.get("signatures")
        if not isinstance(sigs, list) or not sigs:
            raise InputError(source, "DSSE envelope has no signatures")
        if any(isinstance(s, dict) and s.get("cert") for s in sigs):
            raise UnsupportedProvenanceError(
                source,
                "unsupported: a bare DSSE envelope with a Fulcio certificate "
                "(slsa-github-generator before v2.1.0): its transparency-log entry must be "
                "looked up online (Rekor), which offline verification does not do; "
                "regenerate it with slsa-github-generator v2.1.0+ (Sigstore bundle)",
            )
        return Provenance("dsse", doc, source, _peek_statement(doc, source))
    raise UnsupportedProvenanceError(
        source, "unsupported: neither a Sigstore bundle nor a DSSE envelope"
    )


@dataclass(frozen=True)
class ProvenanceFile:
    """A provenance file read once.

    What is verified and what is signed (its digest) are these very bytes, never a second
    read of the path.
    """

    path: str
    data: bytes = field(repr=False)
    sha256: str

    @classmethod
    def read(cls, path: str) -> ProvenanceFile:
        data = read_bounded(path, MAX_BYTES, "provenance")
        return cls(path, data, hashlib.sha256(data).hexdigest())


def load(source: str | ProvenanceFile) -> list[Provenance | InputError]:
    """Every document of a JSON or JSON-lines file, or why it cannot be used.

    A single document that cannot be used raises; in a file of several, the others may still
    hold the provenance for the artifact, so the caller decides (slsa-verifier picks the one
    whose subject matches).
    """
    if isinstance(source, str):
        source = ProvenanceFile.read(source)
    path, raw = source.path, source.data
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(path, "not UTF-8 JSON") from None
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise InputError(path, "empty provenance file")
    try:
        docs = [load_json_bounded(text, path, what="provenance")]
    except InputError:
        if len(lines) == 1:
            raise
        # JSON lines: one provenance document per line
        docs = [
            load_json_bounded(line, f"{path} (line {i + 1})", what="provenance")
            for i, line in enumerate(lines)
        ]
    if not docs:
        raise InputError(path, "empty provenance file")
    if len(docs) == 1:
        return [_classify(docs[0], path)]
    out: list[Provenance | InputError] = []
    for i, doc in enumerate(docs):
        try:
            out.append(_classify(doc, f"{path} (line {i + 1})"))
        except InputError as exc:
            out.append(exc)
    return out
