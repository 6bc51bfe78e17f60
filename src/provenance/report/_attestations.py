"""Status lines for the attestations a report is given: SLSA provenance, VSA, scan result.

Each is read signature-first (`provenance.attest.read_statements`) with the keys given, then its
subjects are compared with the products of the verified chain. Without keys, or for a Sigstore
bundle (checked by `provenance slsa verify` against a certificate policy), nothing in it is
trusted and the status says NOT CHECKED.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from provenance._fs import load_json_bounded, read_bounded
from provenance.errors import InputError, ProvenanceError
from provenance.report._chain import FAIL, Row

VALID, INVALID, NOT_CHECKED, NOT_PROVIDED = "VALID", "INVALID", "NOT CHECKED", "not provided"

KINDS = {
    "SLSA provenance": "https://slsa.dev/provenance/v1",
    "VSA": "https://slsa.dev/verification_summary/v1",
    "scan": "https://in-toto.io/attestation/test-result/v0.1",
}


def _is_sigstore_bundle(path: str) -> bool:
    raw = read_bounded(path, 64 * 1024 * 1024, "attestation")
    first = raw.strip().split(b"\n", 1)[0]
    try:
        doc = load_json_bounded(first, path, what="attestation")
    except InputError:
        return False
    if isinstance(doc, dict) and isinstance(doc.get("bundle"), dict):
        doc = doc["bundle"]
    media = doc.get("mediaType") if isinstance(doc, dict) else None
    return isinstance(media, str) and media.startswith("application/vnd.dev.sigstore.bundle")


def _outcome(kind: str, predicate: Any) -> str:
    if kind == "VSA":
        return f"verificationResult {predicate.verification_result}"
    if kind == "scan":
        return f"scan {predicate.result}"
    return ""


def check(kind: str, path: str | None, keys: Sequence[Any], products: Mapping[str, str]) -> Row:
    """One status row for attestation `kind` at `path` (None: not provided)."""
    if path is None:
        return Row(kind, NOT_PROVIDED)
    from provenance.attest import read_statements

    try:
        if _is_sigstore_bundle(path):
            return Row(
                kind,
                NOT_CHECKED,
                f"{path}: a Sigstore bundle; verify it with `provenance slsa verify`",
            )
        if not keys:
            return Row(kind, NOT_CHECKED, f"{path}: no --attestation-key given")
        statements = read_statements(path, keys, KINDS[kind])
    except ProvenanceError as exc:
        return Row(kind, INVALID, str(exc))
    known = set(products.values())
    notes: list[str] = []
    status = VALID
    for signed in statements:
        digests = signed.statement.digests()
        unknown = sorted(name for name, sha in digests.items() if sha not in known)
        outcome = _outcome(kind, signed.statement.predicate)
        if unknown:
            status = INVALID
            notes.append(f"subject(s) not produced by the verified chain: {', '.join(unknown)}")
        if outcome.endswith("FAILED"):
            status = INVALID if status == VALID else status
        signers = ", ".join(k[:8] for k in signed.keyids)
        notes.append(
            f"signed by {signers}; {len(digests)} subject(s)" + (f"; {outcome}" if outcome else "")
        )
    return Row(kind, status if status != FAIL else INVALID, f"{path}: " + "; ".join(notes))
