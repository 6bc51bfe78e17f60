"""Rekor `intoto/0.0.2` entries (npm provenance, older gh bundles), verified offline.

sigstore-python 4.5.1 takes a signing time only from `dsse`/`hashedrekord` entries and checks
no `intoto` body, so it refuses these bundles. Here, with its `TrustedRoot`, `Keyring` and
Rekor helpers:

1. Exactly one log entry, kind `intoto`, version `0.0.2`; the root lists transparency logs.
2. The log is the one of the root whose log id the entry names, and the entry's integrated
   time is inside that log key's `validFor` window (a retired key never vouches for later
   entries).
3. The signed entry timestamp (SET) verifies with that key over the canonical
   {body, integratedTime, logID, logIndex}: the integrated time is authenticated, and it
   becomes the signing time. The inclusion proof and its signed checkpoint verify too
   (sigstore-python requires a proof in every entry; a bundle without one is refused).
4. The entry's canonicalized body describes THIS bundle, before anything in it is trusted
   (as sigstore-rust #175, binding the whole certificate as sigstore-python #1902 does): kind
   and apiVersion; `payloadHash` = sha256 of the DSSE payload; `payloadType`; one signature,
   equal to the envelope's (Rekor stores it base64 twice); its `publicKey`, a PEM
   certificate, byte-equal to the bundle's signing certificate; the payload, if the body
   carries it. The envelope `hash` covers JSON bytes that cannot be reproduced and is only
   shape-checked. Unknown body fields are refused.
5. RFC 3161 timestamps, if the bundle also has some, must each verify as in `_tsa_only`.
6. At every verified time, the chain to a CA of the root valid then; leaf profile; SCT (the
   public-good root lists CT logs, so it is required there); caller's policy; DSSE signature.

Interface:

    verify_intoto_v002(doc, root, *, source=None, policy=None) -> VerifiedBundle
    is_intoto_v002(doc) -> bool
    match_subject(subjects, digest_alg, digest_hex) -> str | None

`verify_intoto_v002` returns `VerifiedBundle` with time_source "rekor-set" and raises
`InputError` (exit 3, malformed) or `BundleRefused` (exit 1, `.reason`), as `_tsa_only`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from provenance.errors import InputError, UsageError
from provenance.signing.sigstore._material import (
    BundleParts,
    BundleRefused,
    VerifiedBundle,
    as_root,
    finish,
    has_tlogs,
    in_window,
    parse_bundle,
)
from provenance.signing.sigstore._tsa_only import verify_timestamps

if TYPE_CHECKING:
    from sigstore.models import TrustedRoot
    from sigstore.verify.policy import VerificationPolicy

__all__ = [
    "DIGEST_ALGORITHMS",
    "BundleRefused",
    "VerifiedBundle",
    "is_intoto_v002",
    "match_subject",
    "verify_intoto_v002",
]

DIGEST_ALGORITHMS = ("sha256", "sha512")  # gh attestation verify --digest-alg
_HEX64 = re.compile(r"[0-9a-f]{64}")


def is_intoto_v002(doc: Mapping[str, Any]) -> bool:
    """Whether any log entry of a bundle document is `intoto/0.0.2` (route it here)."""
    vm = doc.get("verificationMaterial")
    entries = vm.get("tlogEntries") if isinstance(vm, Mapping) else None
    if not isinstance(entries, list):
        return False
    for entry in entries:
        kv = entry.get("kindVersion") if isinstance(entry, Mapping) else None
        if isinstance(kv, Mapping) and kv.get("kind") == "intoto" and kv.get("version") == "0.0.2":
            return True
    return False


def match_subject(subjects: object, digest_alg: str, digest_hex: str) -> str | None:
    """The name of the first subject whose `digest_alg` digest equals the artifact's, or None.

    gh semantics: `--digest-alg` (sha256 by default, or sha512) chooses the one algorithm the
    artifact is hashed with, and a subject matches only by that algorithm. npm subjects carry
    only sha512, so they match with `--digest-alg sha512` and never by another digest.
    Subjects that are not objects with a `digest` object are skipped, never matched.
    """
    if digest_alg not in DIGEST_ALGORITHMS:
        raise UsageError(
            f"--digest-alg: {digest_alg!r} is not one of {', '.join(DIGEST_ALGORITHMS)}"
        )
    want = digest_hex.lower()
    if not isinstance(subjects, Sequence) or isinstance(subjects, str | bytes):
        return None
    for subject in subjects:
        if not isinstance(subject, Mapping):
            continue
        digests = subject.get("digest")
        got = digests.get(digest_alg) if isinstance(digests, Mapping) else None
        if isinstance(got, str) and hmac.compare_digest(got.lower(), want):
            name = subject.get("name")
            return name if isinstance(name, str) else ""
    return None


def _entry(raw: dict[str, Any], source: str | None) -> Any:
    from pydantic import ValidationError
    from sigstore.errors import Error as SigstoreError
    from sigstore.models import TransparencyLogEntry
    from sigstore_models.rekor.v1 import TransparencyLogEntry as _Inner

    if not isinstance(raw.get("inclusionProof"), dict):
        # Valid in bundle v0.1, but sigstore-python requires a proof in every entry: refused.
        raise BundleRefused("log entry has no inclusion proof")
    try:
        inner = _Inner.from_json(json.dumps(raw))
    except ValidationError as exc:
        err = exc.errors()[0]
        where = ".".join(str(part) for part in err["loc"])
        raise InputError(
            source, f"Sigstore bundle: malformed log entry: {where}: {err['msg']}"
        ) from None
    except (ValueError, TypeError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(source, f"Sigstore bundle: malformed log entry ({first})") from None
    try:
        return TransparencyLogEntry(inner)
    except SigstoreError as exc:
        raise BundleRefused(f"log entry: {exc}") from None


def _verify_entry(entry: Any, root: TrustedRoot) -> datetime:
    """SET, inclusion proof and checkpoint with the one log key named; returns the time."""
    from sigstore._internal.merkle import verify_merkle_inclusion
    from sigstore._internal.rekor.checkpoint import verify_checkpoint
    from sigstore._internal.trust import Keyring, RekorKeyring
    from sigstore.errors import Error as SigstoreError

    inner = entry._inner
    log = next((t for t in root._inner.tlogs if t.log_id.key_id == inner.log_id.key_id), None)
    if log is None:
        raise BundleRefused(
            f"log entry: log id {inner.log_id.key_id.hex()} is not a transparency log of the "
            "trusted root"
        )
    if inner.integrated_time is None or inner.inclusion_promise is None:
        raise BundleRefused("log entry has no signed entry timestamp (SET)")
    try:
        when = datetime.fromtimestamp(int(inner.integrated_time), tz=timezone.utc)
    except (OverflowError, OSError, ValueError):
        raise BundleRefused(
            f"log entry: integratedTime {inner.integrated_time} is not a time"
        ) from None
    if not in_window(log.public_key.valid_for, when):
        raise BundleRefused(
            f"log entry: integrated time {when.isoformat()} is outside the validity window of "
            "the log key that signed it"
        )
    keyring = RekorKeyring(Keyring([log.public_key]))
    try:
        entry._verify_set(keyring)
    except (SigstoreError, ValueError) as exc:
        raise BundleRefused(
            f"log entry: the signed entry timestamp does not verify ({exc})"
        ) from None
    try:
        verify_merkle_inclusion(entry)
        verify_checkpoint(keyring, entry)
    except (SigstoreError, ValueError) as exc:
        raise BundleRefused(f"log entry: the inclusion proof does not verify ({exc})") from None
    return when


def _keys(d: object, allowed: set[str], required: set[str], what: str) -> dict[str, Any]:
    if not isinstance(d, dict):
        raise BundleRefused(f"log entry body: {what} is not an object")
    if set(d) - allowed or required - set(d):
        raise BundleRefused(
            f"log entry body: {what} has fields {sorted(d)}, expected {sorted(required)}"
            + (f" (optional {sorted(allowed - required)})" if allowed - required else "")
        )
    return d


def check_body(entry: Any, parts: BundleParts) -> None:
    """The canonicalized intoto/0.0.2 body must describe this bundle, field by field."""
    inner = entry._inner
    if (inner.kind_version.kind, inner.kind_version.version) != ("intoto", "0.0.2"):
        raise BundleRefused(
            f"log entry kind {inner.kind_version.kind}/{inner.kind_version.version}, "
            "expected intoto/0.0.2"
        )
    try:
        body = json.loads(inner.canonicalized_body)
    except (ValueError, RecursionError):
        raise BundleRefused("log entry body is not JSON") from None
    body = _keys(body, {"apiVersion", "kind", "spec"}, {"apiVersion", "kind", "spec"}, "the body")
    if (body["kind"], body["apiVersion"]) != ("intoto", "0.0.2"):
        raise BundleRefused(
            f"log entry body is {body['kind']!r}/{body['apiVersion']!r}, expected intoto/0.0.2"
        )
    spec = _keys(body["spec"], {"content"}, {"content"}, "spec")
    content = _keys(
        spec["content"], {"envelope", "hash", "payloadHash"}, {"envelope", "payloadHash"}, "content"
    )
    want_hash = hashlib.sha256(parts.payload).hexdigest()
    payload_hash = _keys(
        content["payloadHash"], {"algorithm", "value"}, {"algorithm", "value"}, "payloadHash"
    )
    if payload_hash["algorithm"] != "sha256" or payload_hash["value"] != want_hash:
        raise BundleRefused(
            f"log entry body: payload hash {payload_hash['algorithm']}:{payload_hash['value']} "
            f"is not the bundle's payload (sha256:{want_hash})"
        )
    if "hash" in content:
        env_hash = _keys(content["hash"], {"algorithm", "value"}, {"algorithm", "value"}, "hash")
        if env_hash["algorithm"] != "sha256" or not _HEX64.fullmatch(str(env_hash["value"])):
            raise BundleRefused("log entry body: envelope hash is not a sha256 hex digest")
    envelope = _keys(
        content["envelope"],
        {"payloadType", "signatures", "payload"},
        {"payloadType", "signatures"},
        "envelope",
    )
    if envelope["payloadType"] != parts.payload_type:
        raise BundleRefused(
            f"log entry body: payload type {envelope['payloadType']!r} is not the bundle's "
            f"{parts.payload_type!r}"
        )
    # Rekor's intoto/0.0.2 stores the envelope's payload and signatures base64-encoded once
    # more (their DSSE base64 text, base64-encoded): decode twice, as for the signature below.
    if (
        "payload" in envelope
        and _b64(_b64(envelope["payload"], "payload").decode("ascii", "replace"), "payload")
        != parts.payload
    ):
        raise BundleRefused("log entry body: payload is not the bundle's payload")
    sigs = envelope["signatures"]
    if not isinstance(sigs, list) or len(sigs) != 1:
        raise BundleRefused("log entry body: expected exactly one signature")
    sig = _keys(sigs[0], {"sig", "publicKey", "keyid"}, {"sig", "publicKey"}, "signature")
    if (
        _b64(_b64(sig["sig"], "signature").decode("ascii", "replace"), "signature")
        != parts.signature
    ):
        raise BundleRefused("log entry body: the logged signature is not the bundle's signature")
    try:
        logged = x509.load_pem_x509_certificate(_b64(sig["publicKey"], "publicKey"))
    except ValueError:
        raise BundleRefused(
            "log entry body: the logged verifier is not a PEM certificate"
        ) from None
    if logged.public_bytes(Encoding.DER) != parts.certificate.public_bytes(Encoding.DER):
        raise BundleRefused(
            "log entry body: the logged certificate is not the bundle's signing certificate"
        )


def _b64(value: object, what: str) -> bytes:
    if not isinstance(value, str):
        raise BundleRefused(f"log entry body: {what} is not a string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise BundleRefused(f"log entry body: {what} is not base64") from None


def verify_intoto_v002(
    doc: Mapping[str, Any],
    root: TrustedRoot | Mapping[str, Any],
    *,
    source: str | None = None,
    policy: VerificationPolicy | None = None,
) -> VerifiedBundle:
    """Verify a DSSE bundle whose one log entry is intoto/0.0.2, against a root with logs."""
    parts = parse_bundle(doc, source)
    trusted = as_root(root)
    if not has_tlogs(trusted):
        raise BundleRefused(
            "the bundle has a transparency-log entry and the trusted root lists no transparency "
            "log to check it with"
        )
    if len(parts.tlog_entries) != 1:
        raise BundleRefused(f"the bundle has {len(parts.tlog_entries)} log entries, expected one")
    entry = _entry(parts.tlog_entries[0], source)
    check_body(entry, parts)
    times = [_verify_entry(entry, trusted)]
    if parts.timestamps:
        times += verify_timestamps(parts, trusted, source)
    return finish(parts, trusted, times, "rekor-set", policy)
