"""Rekor intoto/0.0.2 entries (npm provenance), verified offline against the public-good root.

The genuine npm bundles (cli/cli, sigstore-go) verify: the signing time comes from the signed
entry timestamp, the entry body describes the bundle, the SCT and chain hold at that time. Each
field of the body, the SET, the proof and the root are tampered with in memory and refused.
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from provenance.errors import InputError, UsageError
from provenance.signing.sigstore._material import BundleRefused
from provenance.signing.sigstore._rekor_intoto import (
    is_intoto_v002,
    match_subject,
    verify_intoto_v002,
)
from provenance.signing.sigstore._roots import load_root, named_root

VECTORS = Path(__file__).parents[1] / "vectors"
GH = VECTORS / "gh"
NPM = GH / "sigstore-js-2.1.0-bundle.json"
NPM_V01 = GH / "sigstore-js-2.1.0-bundle-v0.1.json"
GO = VECTORS / "sigstore-go" / "sigstore.js@2.0.0-provenance.sigstore.json"
PUBLIC_GOOD = VECTORS / "sigstore-python" / "trusted_root.production.json"
STAGING = VECTORS / "sigstore-python" / "trusted_root.staging.json"
RELEASE = "https://github.com/sigstore/sigstore-js/.github/workflows/release.yml@refs/heads/main"
REPO_OID = x509.ObjectIdentifier("1.3.6.1.4.1.57264.1.12")


def load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def root() -> dict[str, Any]:
    return load(PUBLIC_GOOD)


def san(cert: x509.Certificate) -> str:
    ext = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return ext.get_values_for_type(x509.UniformResourceIdentifier)[0]


def refused(doc: dict[str, Any], words: str, trusted: Any = None) -> None:
    with pytest.raises(BundleRefused) as info:
        verify_intoto_v002(doc, trusted if trusted is not None else root(), source="b.json")
    assert words in info.value.reason, info.value.reason
    assert info.value.exit_code == 1


def entry(doc: dict[str, Any]) -> dict[str, Any]:
    return doc["verificationMaterial"]["tlogEntries"][0]


def edit_body(doc: dict[str, Any], change: Any) -> dict[str, Any]:
    body = json.loads(base64.b64decode(entry(doc)["canonicalizedBody"]))
    change(body)
    entry(doc)["canonicalizedBody"] = base64.b64encode(
        json.dumps(body, separators=(",", ":")).encode()
    ).decode()
    return doc


def content(body: dict[str, Any]) -> dict[str, Any]:
    return body["spec"]["content"]


# --- genuine vectors ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "when"),
    [
        (NPM, datetime(2023, 8, 29, 15, 40, 23, tzinfo=timezone.utc)),
        (NPM_V01, datetime(2023, 8, 29, 15, 40, 23, tzinfo=timezone.utc)),
        (GO, datetime(2023, 8, 18, 16, 5, 35, tzinfo=timezone.utc)),
    ],
)
def test_npm_provenance_verifies_with_the_public_good_root(path: Path, when: datetime) -> None:
    doc = load(path)
    assert is_intoto_v002(doc)
    result = verify_intoto_v002(doc, load_root(named_root("public-good")), source=str(path))
    assert san(result.certificate) == RELEASE
    raw = result.certificate.extensions.get_extension_for_oid(REPO_OID).value.value  # type: ignore[attr-defined]
    assert raw.endswith(b"https://github.com/sigstore/sigstore-js")
    assert result.times == (when,) and result.time_source == "rekor-set"
    assert result.sct_checked is True and result.payload_type == "application/vnd.in-toto+json"


def test_sha512_subject_matches_the_tarball_by_sha512_only() -> None:
    statement = json.loads(verify_intoto_v002(load(NPM), root()).payload)
    tgz = (GH / "sigstore-js-2.1.0.tgz").read_bytes()
    subjects = statement["subject"]
    assert match_subject(subjects, "sha512", hashlib.sha512(tgz).hexdigest()) == (
        "pkg:npm/sigstore@2.1.0"
    )
    assert match_subject(subjects, "sha256", hashlib.sha256(tgz).hexdigest()) is None  # gh default
    assert match_subject(subjects, "sha512", hashlib.sha512(b"other").hexdigest()) is None
    assert match_subject([{"name": "x", "digest": "nope"}, 3], "sha512", "00") is None
    with pytest.raises(UsageError, match="digest-alg"):
        match_subject(subjects, "sha384", "00")


# --- the entry body must describe this bundle --------------------------------------------------


@pytest.mark.parametrize(
    ("change", "words"),
    [
        (lambda b: content(b)["payloadHash"].__setitem__("value", "0" * 64), "payload hash"),
        (lambda b: content(b)["payloadHash"].__setitem__("algorithm", "sha512"), "payload hash"),
        (lambda b: content(b)["envelope"].__setitem__("payloadType", "text/plain"), "payload type"),
        (
            lambda b: content(b)["envelope"]["signatures"][0].__setitem__(
                "sig", base64.b64encode(base64.b64encode(b"\x30\x00")).decode()
            ),
            "logged signature is not the bundle's",
        ),
        (
            lambda b: content(b)["envelope"]["signatures"][0].__setitem__(
                "publicKey",
                base64.b64encode(
                    x509.load_der_x509_certificate(
                        base64.b64decode(
                            load(GO)["verificationMaterial"]["x509CertificateChain"][
                                "certificates"
                            ][0]["rawBytes"]
                        )
                    ).public_bytes(Encoding.PEM)
                ).decode(),
            ),
            "logged certificate is not the bundle's",
        ),
        (
            lambda b: content(b)["envelope"]["signatures"].append(
                content(b)["envelope"]["signatures"][0]
            ),
            "exactly one signature",
        ),
        (lambda b: content(b)["envelope"].__setitem__("payload", "e30="), "payload is not"),
        (lambda b: b.__setitem__("kind", "dsse"), "expected intoto/0.0.2"),
        (lambda b: b.__setitem__("apiVersion", "0.0.1"), "expected intoto/0.0.2"),
        (lambda b: content(b).__setitem__("extra", 1), "content has fields"),
        (lambda b: content(b)["hash"].__setitem__("value", "zz"), "envelope hash"),
    ],
)
def test_entry_body_not_matching_the_bundle_is_refused(change: Any, words: str) -> None:
    refused(edit_body(load(NPM), change), words)


def test_bundle_payload_changed_under_a_genuine_entry_is_refused() -> None:
    doc = load(NPM)
    statement = json.loads(base64.b64decode(doc["dsseEnvelope"]["payload"]))
    statement["subject"][0]["digest"]["sha512"] = "0" * 128
    doc["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()
    refused(doc, "payload hash")


def test_bundle_signature_changed_under_a_genuine_entry_is_refused() -> None:
    doc = load(NPM)
    doc["dsseEnvelope"]["signatures"][0]["sig"] = load(GO)["dsseEnvelope"]["signatures"][0]["sig"]
    refused(doc, "logged signature is not the bundle's")


def test_bundle_certificate_swapped_under_a_genuine_entry_is_refused() -> None:
    doc = load(NPM)
    other = load(GO)["verificationMaterial"]["x509CertificateChain"]["certificates"][0]
    doc["verificationMaterial"]["certificate"] = {"rawBytes": other["rawBytes"]}
    refused(doc, "logged certificate is not the bundle's")


def test_bundle_payload_type_changed_is_refused() -> None:
    doc = load(NPM)
    doc["dsseEnvelope"]["payloadType"] = "application/json"
    refused(doc, "payload type")


def test_entry_from_another_bundle_is_refused() -> None:
    doc = load(NPM)
    doc["verificationMaterial"]["tlogEntries"] = load(GO)["verificationMaterial"]["tlogEntries"]
    refused(doc, "payload hash")


# --- the signed entry timestamp, proof and log ---------------------------------------------------


def test_changed_integrated_time_breaks_the_set() -> None:
    doc = load(NPM)
    entry(doc)["integratedTime"] = str(int(entry(doc)["integratedTime"]) - 3600)
    refused(doc, "signed entry timestamp does not verify")


def test_invalid_set_signature_is_refused() -> None:
    doc = load(NPM)
    entry(doc)["inclusionPromise"]["signedEntryTimestamp"] = load(GO)["verificationMaterial"][
        "tlogEntries"
    ][0]["inclusionPromise"]["signedEntryTimestamp"]
    refused(doc, "signed entry timestamp does not verify")


def test_changed_log_index_breaks_the_set() -> None:
    doc = load(NPM)
    entry(doc)["logIndex"] = str(int(entry(doc)["logIndex"]) + 1)
    refused(doc, "signed entry timestamp does not verify")


def test_entry_without_set_is_refused() -> None:
    doc = load(NPM)
    del entry(doc)["inclusionPromise"]
    refused(doc, "no signed entry timestamp")


def test_tampered_inclusion_proof_is_refused() -> None:
    doc = load(NPM)
    entry(doc)["inclusionProof"]["hashes"][0] = base64.b64encode(b"\0" * 32).decode()
    refused(doc, "inclusion proof does not verify")


def test_entry_without_inclusion_proof_is_refused() -> None:
    doc = load(NPM)
    del entry(doc)["inclusionProof"]
    refused(doc, "inclusion proof")


def test_log_not_in_the_root_is_refused() -> None:
    refused(load(NPM), "not a transparency log of the trusted root", load(STAGING))


def test_integrated_time_outside_the_log_keys_window_is_refused() -> None:
    trusted = root()
    for log in trusted["tlogs"]:
        log["publicKey"]["validFor"] = {"start": "2024-01-01T00:00:00Z"}
    refused(load(NPM), "outside the validity window of the log key", trusted)


def test_root_without_logs_is_refused() -> None:
    refused(
        load(NPM), "lists no transparency log", json.loads(Path(named_root("github")).read_text())
    )


def test_chain_not_valid_at_the_set_time_is_refused() -> None:
    trusted = root()
    for ca in trusted["certificateAuthorities"]:
        ca["validFor"] = {"start": "2024-01-01T00:00:00Z"}
    refused(
        load(NPM), "no certificate authority of the trusted root is valid at 2023-08-29", trusted
    )


def test_root_without_ct_logs_for_an_sct_bearing_root_is_not_required() -> None:
    """Without CT logs in the root the SCT is not checked, and the result says so."""
    trusted = root()
    trusted["ctlogs"] = []
    assert verify_intoto_v002(load(NPM), trusted).sct_checked is False


def test_two_entries_are_refused() -> None:
    doc = load(NPM)
    doc["verificationMaterial"]["tlogEntries"].append(entry(load(NPM)))
    refused(doc, "2 log entries")


def test_malformed_entry_is_invalid_input() -> None:
    doc = load(NPM)
    entry(doc)["logIndex"] = {"x": 1}
    with pytest.raises(InputError, match="malformed log entry") as info:
        verify_intoto_v002(doc, root(), source="b.json")
    assert info.value.exit_code == 3
