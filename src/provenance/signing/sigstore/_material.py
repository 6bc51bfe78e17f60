"""What the two offline bundle paths share: the bundle's parts, the root's authorities, the chain.

`_tsa_only` (timestamp-only bundles, GitHub's own Sigstore instance) and `_rekor_intoto`
(Rekor `intoto/0.0.2` entries) each establish verified signing times their own way; from there
the steps are the same and live here:

- `parse_bundle` reads the parts of a DSSE Sigstore bundle from its JSON without
  sigstore-models (which refuses bundles without a log entry). Malformed input is an
  `InputError` (exit 3) naming the field.
- `verify_chain_at` checks the Fulcio certificate against ONE certificate authority of the
  trusted root whose `validFor` window contains the time, anchored at that authority's root
  only, its own intermediates as the only intermediates (certificates the bundle carries are
  never used), leaf and CAs valid at that time.
- `check_leaf` (Sigstore's X.509 profile: digital signature, code signing), `check_sct`
  (when the root lists CT logs), `verify_dsse` (PAE, ECDSA P-256 / SHA-256, one signature).

A verification that does not hold raises `BundleRefused` (a `VerificationError`, exit 1) with
one line saying why; the lead's `verify_bundle` turns it into a failure row.

Private sigstore-python APIs are used (`TrustedRoot._inner`, `Keyring`, `verify_sct`, the
Rekor entry helpers); `pyproject.toml` pins sigstore and rfc3161-client exactly and
`tests/unit/test_slsa_tsa_only.py::test_pinned_private_sigstore_apis_exist` fails on an upgrade.
"""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID

from provenance.errors import InputError, VerificationError

if TYPE_CHECKING:
    from sigstore.models import TrustedRoot
    from sigstore.verify.policy import VerificationPolicy

BUNDLE_MEDIA_TYPES = frozenset(
    {
        "application/vnd.dev.sigstore.bundle+json;version=0.1",
        "application/vnd.dev.sigstore.bundle+json;version=0.2",
        "application/vnd.dev.sigstore.bundle+json;version=0.3",
        "application/vnd.dev.sigstore.bundle.v0.3+json",
    }
)
_TOP_KEYS = frozenset({"mediaType", "verificationMaterial", "dsseEnvelope", "messageSignature"})
_VM_KEYS = frozenset(
    {
        "certificate",
        "x509CertificateChain",
        "publicKey",
        "tlogEntries",
        "timestampVerificationData",
    }
)
_ENVELOPE_KEYS = frozenset({"payload", "payloadType", "signatures"})
MAX_TIMESTAMPS = 32  # as sigstore-python and sigstore-go: bounded work per bundle


class BundleRefused(VerificationError):
    """The bundle is well-formed but does not verify; `reason` says which check and why."""

    def __init__(self, reason: str) -> None:
        self.reason = reason
        super().__init__(reason)


@dataclass(frozen=True)
class VerifiedBundle:
    """What an offline path proved: use these, never the bundle's own fields.

    Attributes:
        certificate: the Fulcio leaf, chained to the root at every time in `times`; the
            caller applies its identity policy to it (SAN, issuer, repository, ...).
        payload_type: the DSSE payload type the signature covers.
        payload: the DSSE payload bytes the signature covers.
        times: the verified signing times (UTC), one per verified time source.
        time_source: "rfc3161" (timestamp authority) or "rekor-set" (signed entry timestamp;
            RFC 3161 times, if the bundle also had any, are in `times` too).
        sct_checked: whether an embedded SCT was verified (False only for roots without CT
            logs, such as GitHub's, whose Fulcio issues no SCTs).
    """

    certificate: x509.Certificate
    payload_type: str
    payload: bytes
    times: tuple[datetime, ...]
    time_source: Literal["rfc3161", "rekor-set"]
    sct_checked: bool


@dataclass(frozen=True)
class BundleParts:
    """The parts of a DSSE Sigstore bundle, decoded but not yet trusted."""

    media_type: str
    certificate: x509.Certificate
    payload_type: str
    payload: bytes
    signature: bytes
    tlog_entries: tuple[dict[str, Any], ...]
    timestamps: tuple[bytes, ...]


def _b64(value: object, what: str, source: str | None) -> bytes:
    if not isinstance(value, str) or not value:
        raise InputError(source, f"Sigstore bundle: {what} is missing or not a string")
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise InputError(source, f"Sigstore bundle: {what} is not base64") from None


def _dict(value: object, what: str, source: str | None) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise InputError(source, f"Sigstore bundle: {what} is missing or not an object")
    return value


def _only(d: Mapping[str, Any], allowed: frozenset[str], what: str, source: str | None) -> None:
    extra = sorted(set(d) - allowed)
    if extra:
        raise InputError(source, f"Sigstore bundle: unknown field(s) in {what}: {extra}")


def _leaf(vm: Mapping[str, Any], source: str | None) -> x509.Certificate:
    if "certificate" in vm:
        raw = _b64(
            _dict(vm["certificate"], "certificate", source).get("rawBytes"), "certificate", source
        )
    elif "x509CertificateChain" in vm:
        chain = _dict(vm["x509CertificateChain"], "x509CertificateChain", source).get(
            "certificates"
        )
        if not isinstance(chain, list) or not chain:
            raise InputError(source, "Sigstore bundle: empty x509CertificateChain")
        # Only the leaf is used; CA certificates come from the trusted root, never the bundle.
        raw = _b64(_dict(chain[0], "certificate", source).get("rawBytes"), "certificate", source)
    elif "publicKey" in vm:
        raise InputError(
            source, "Sigstore bundle has no signing certificate (only a public-key hint)"
        )
    else:
        raise InputError(source, "Sigstore bundle has no signing certificate")
    try:
        return x509.load_der_x509_certificate(raw)
    except ValueError:
        raise InputError(
            source, "Sigstore bundle: the signing certificate is not DER X.509"
        ) from None


def parse_bundle(doc: object, source: str | None = None) -> BundleParts:
    """Decode a DSSE Sigstore bundle's parts; InputError names the first malformed field."""
    d = _dict(doc, "the bundle", source)
    _only(d, _TOP_KEYS, "the bundle", source)
    media = d.get("mediaType")
    if not isinstance(media, str) or media not in BUNDLE_MEDIA_TYPES:
        raise InputError(source, f"Sigstore bundle: unknown media type {media!r}")
    if "dsseEnvelope" not in d:
        raise InputError(source, "Sigstore bundle has no DSSE envelope")
    vm = _dict(d.get("verificationMaterial"), "verificationMaterial", source)
    _only(vm, _VM_KEYS, "verificationMaterial", source)
    env = _dict(d["dsseEnvelope"], "dsseEnvelope", source)
    _only(env, _ENVELOPE_KEYS, "dsseEnvelope", source)
    ptype = env.get("payloadType")
    if not isinstance(ptype, str) or not ptype:
        raise InputError(source, "Sigstore bundle: DSSE payloadType is missing")
    sigs = env.get("signatures")
    if not isinstance(sigs, list) or len(sigs) != 1:
        raise InputError(source, "Sigstore bundle: the DSSE envelope must have one signature")
    sig = _b64(_dict(sigs[0], "DSSE signature", source).get("sig"), "DSSE signature", source)
    entries = vm.get("tlogEntries") or []
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise InputError(source, "Sigstore bundle: tlogEntries is not a list of objects")
    stamps: list[bytes] = []
    tvd = vm.get("timestampVerificationData")
    if tvd is not None:
        listed = _dict(tvd, "timestampVerificationData", source).get("rfc3161Timestamps") or []
        if not isinstance(listed, list):
            raise InputError(source, "Sigstore bundle: rfc3161Timestamps is not a list")
        if len(listed) > MAX_TIMESTAMPS:
            raise InputError(
                source, f"Sigstore bundle: {len(listed)} timestamps, at most {MAX_TIMESTAMPS}"
            )
        for i, item in enumerate(listed):
            stamp = _dict(item, f"timestamp #{i + 1}", source).get("signedTimestamp")
            stamps.append(_b64(stamp, f"timestamp #{i + 1}", source))
    return BundleParts(
        media_type=media,
        certificate=_leaf(vm, source),
        payload_type=ptype,
        payload=_b64(env.get("payload"), "DSSE payload", source),
        signature=sig,
        tlog_entries=tuple(entries),
        timestamps=tuple(stamps),
    )


def load_root_json(raw: bytes | str | Mapping[str, Any], source: str | None = None) -> TrustedRoot:
    """A sigstore `TrustedRoot` from its JSON; repeated fields protobuf omits when empty are [].

    `gh attestation trusted-root` prints GitHub's root without `tlogs` and `ctlogs` (protobuf
    JSON drops empty lists); sigstore-models requires both keys, so they are added as empty.
    """
    from sigstore.errors import Error as SigstoreError
    from sigstore.models import TrustedRoot
    from sigstore_models.trustroot import v1 as trustroot_v1

    try:
        doc = dict(raw) if isinstance(raw, Mapping) else json.loads(raw)
        if not isinstance(doc, dict):
            raise ValueError("not a JSON object")
        for key in ("tlogs", "ctlogs", "certificateAuthorities", "timestampAuthorities"):
            doc.setdefault(key, [])
        return TrustedRoot(trustroot_v1.TrustedRoot.from_json(json.dumps(doc)))
    except (ValueError, TypeError, RecursionError, SigstoreError) as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise InputError(source, f"not a Sigstore trusted root ({first})") from None


def as_root(root: TrustedRoot | Mapping[str, Any]) -> TrustedRoot:
    """Accept a parsed TrustedRoot or its JSON document."""
    from sigstore.models import TrustedRoot

    if isinstance(root, TrustedRoot):
        return root
    return load_root_json(root)


def has_tlogs(root: TrustedRoot) -> bool:
    """Whether the root lists any transparency log (public-good and staging do; GitHub's not)."""
    return bool(root._inner.tlogs)


def _certs(chain: Any) -> list[x509.Certificate]:
    return [x509.load_der_x509_certificate(c.raw_bytes) for c in chain.certificates]


def in_window(valid_for: Any, when: datetime) -> bool:
    """`start <= when < end` (open end when absent); an authority without a window is refused."""
    if valid_for is None or valid_for.start is None:
        return False
    return bool(valid_for.start <= when and (valid_for.end is None or when < valid_for.end))


def timestamp_authorities(root: TrustedRoot) -> list[tuple[list[x509.Certificate], Any]]:
    """Each TSA's (certificates leaf..root, validFor); never pooled across authorities."""
    return [(_certs(a.cert_chain), a.valid_for) for a in root._inner.timestamp_authorities]


def certificate_authorities(root: TrustedRoot) -> list[tuple[list[x509.Certificate], Any]]:
    """Each Fulcio CA's (certificates intermediate..root, validFor)."""
    return [(_certs(a.cert_chain), a.valid_for) for a in root._inner.certificate_authorities]


def verify_chain_at(
    cert: x509.Certificate, root: TrustedRoot, when: datetime
) -> list[x509.Certificate]:
    """The chain (leaf excluded) to a CA of the root whose window contains `when`, or refuse."""
    from cryptography.x509 import ExtendedKeyUsage
    from cryptography.x509.verification import (
        Criticality,
        ExtensionPolicy,
        PolicyBuilder,
        Store,
    )
    from cryptography.x509.verification import VerificationError as X509Error

    authorities = certificate_authorities(root)
    if not authorities:
        raise BundleRefused("the trusted root lists no certificate authority (Fulcio)")
    # As sigstore-python: Fulcio certificates carry code signing, not client auth; only the
    # EKU validator is relaxed, every other web-PKI check stays.
    ca_policy = ExtensionPolicy.webpki_defaults_ca().may_be_present(
        ExtendedKeyUsage, Criticality.NON_CRITICAL, None
    )
    ee_policy = ExtensionPolicy.webpki_defaults_ee().may_be_present(
        ExtendedKeyUsage, Criticality.NON_CRITICAL, None
    )
    errors: list[str] = []
    for certs, valid_for in authorities:
        if len(certs) < 1 or not in_window(valid_for, when):
            continue
        verifier = (
            PolicyBuilder()
            .store(Store([certs[-1]]))
            .time(when)
            .extension_policies(ca_policy=ca_policy, ee_policy=ee_policy)
            .build_client_verifier()
        )
        try:
            return list(verifier.verify(cert, certs[:-1]).chain[1:])
        except (X509Error, x509.UnsupportedGeneralNameType) as exc:
            errors.append(str(exc))
    if not errors:
        raise BundleRefused(
            f"no certificate authority of the trusted root is valid at {when.isoformat()}"
        )
    raise BundleRefused(
        f"the signing certificate does not chain to a certificate authority of the trusted root "
        f"valid at {when.isoformat()} ({errors[-1]})"
    )


def check_leaf(cert: x509.Certificate) -> None:
    """Sigstore's X.509 profile for the signing certificate."""
    try:
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage).value
        eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound as exc:
        raise BundleRefused(f"signing certificate: {exc}") from None
    if not usage.digital_signature:
        raise BundleRefused("signing certificate: key usage is not digital signature")
    if ExtendedKeyUsageOID.CODE_SIGNING not in eku:
        raise BundleRefused("signing certificate: extended key usage lacks code signing")


def check_sct(cert: x509.Certificate, chain: list[x509.Certificate], root: TrustedRoot) -> bool:
    """Verify the embedded SCT when the root lists CT logs; False when it lists none."""
    from sigstore._internal.sct import verify_sct
    from sigstore._internal.trust import CTKeyring, Keyring
    from sigstore.errors import VerificationError as SigstoreVerificationError

    logs = root._inner.ctlogs
    if not logs:
        return False
    try:
        verify_sct(cert, chain, CTKeyring(Keyring([log.public_key for log in logs])))
    except (SigstoreVerificationError, ValueError) as exc:
        raise BundleRefused(f"signing certificate: SCT does not verify ({exc})") from None
    return True


def pae(payload_type: str, payload: bytes) -> bytes:
    """DSSE pre-authentication encoding, the bytes the signature covers."""
    t = payload_type.encode()
    return b"DSSEv1 %d %b %d %b" % (len(t), t, len(payload), payload)


def verify_dsse(parts: BundleParts) -> None:
    """The envelope's one signature over PAE(type, payload) with the leaf's P-256 key."""
    key = parts.certificate.public_key()
    if not isinstance(key, ec.EllipticCurvePublicKey) or key.curve.name != "secp256r1":
        raise BundleRefused("signing certificate: key is not ECDSA P-256 (only that is accepted)")
    try:
        key.verify(
            parts.signature, pae(parts.payload_type, parts.payload), ec.ECDSA(hashes.SHA256())
        )
    except InvalidSignature:
        raise BundleRefused("DSSE signature does not verify over the payload") from None


def finish(
    parts: BundleParts,
    root: TrustedRoot,
    times: list[datetime],
    source: Literal["rfc3161", "rekor-set"],
    policy: VerificationPolicy | None,
) -> VerifiedBundle:
    """Chain at every verified time, profile, SCT, caller's policy, DSSE signature."""
    if not times:
        raise BundleRefused("no verified signing time")
    chain: list[x509.Certificate] = []
    for when in times:
        chain = verify_chain_at(parts.certificate, root, when)
    check_leaf(parts.certificate)
    sct = check_sct(parts.certificate, chain, root)
    if policy is not None:
        policy.verify(parts.certificate)
    verify_dsse(parts)
    return VerifiedBundle(
        certificate=parts.certificate,
        payload_type=parts.payload_type,
        payload=parts.payload,
        times=tuple(times),
        time_source=source,
        sct_checked=sct,
    )
