"""Timestamp-only Sigstore bundles: GitHub private-repository attestations, verified offline.

GitHub's own Sigstore instance (fulcio.githubapp.com, timestamp.githubapp.com) logs nothing:
its bundles carry RFC 3161 timestamps and no transparency-log entry, and its trusted root
(`--trusted-root github`, `roots/github.json`) lists no transparency and no CT logs.
sigstore-python 4.5.1 refuses such bundles while parsing and in `Bundle._verify`, so this
module verifies them itself, with sigstore-python's `TrustedRoot` and rfc3161-client:

1. The trusted root must list no transparency log. A root that has logs (public-good,
   staging) never accepts a bundle without a log entry: dropping the entry would otherwise
   turn a logged signature into an unlogged one.
2. The bundle has no log entry and 1..32 distinct timestamps.
3. EVERY timestamp verifies against one timestamp authority of the root: that authority's
   certificate chain (at genTime), its leaf as the signer (timeStamping EKU, critical), the
   message imprint over the DSSE signature bytes, and genTime inside THAT authority's
   `validFor` window. Authorities are tried one by one; certificates and windows are never
   pooled across them (TOB-SIGSTORE-11). One timestamp that verifies nowhere refuses the
   bundle (stricter than sigstore-python, which ignores it).
4. At every verified time, the Fulcio certificate chains to a certificate authority of the
   root whose window contains that time (TOB-SIGSTORE-3/4), leaf valid at that time.
5. Sigstore's leaf profile; the SCT when the root lists CT logs (GitHub's lists none).
6. The caller's certificate policy, if given; then the DSSE signature over PAE.

Interface (the lead calls it from `_bundle.verify_bundle`):

    verify_tsa_only(doc, root, *, source=None, policy=None) -> VerifiedBundle

`doc` is the bundle's JSON (dict); `root` a sigstore `TrustedRoot` or the trusted-root JSON
(dict). Returns `VerifiedBundle` (certificate, payload_type, payload, times, time_source
"rfc3161", sct_checked). Raises `InputError` (exit 3) for malformed input (bundle fields,
undecodable timestamps) and `BundleRefused` (a `VerificationError`, exit 1; `.reason` is one
line) for everything that does not verify. `policy.verify(cert)` may raise sigstore's own
`VerificationError`, which is passed through unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import TYPE_CHECKING, Any

from provenance.errors import InputError
from provenance.signing.sigstore._material import (
    BundleParts,
    BundleRefused,
    VerifiedBundle,
    as_root,
    finish,
    has_tlogs,
    in_window,
    parse_bundle,
    timestamp_authorities,
)

if TYPE_CHECKING:
    from sigstore.models import TrustedRoot
    from sigstore.verify.policy import VerificationPolicy

__all__ = ["BundleRefused", "VerifiedBundle", "is_tsa_only", "verify_tsa_only", "verify_timestamps"]


def is_tsa_only(doc: Mapping[str, Any]) -> bool:
    """Whether a bundle document has no transparency-log entry (route it here, not to sigstore)."""
    vm = doc.get("verificationMaterial")
    return isinstance(vm, Mapping) and not vm.get("tlogEntries")


def verify_timestamps(
    parts: BundleParts, root: TrustedRoot, source: str | None = None
) -> list[datetime]:
    """The genTime of every timestamp, each verified against one authority, or refuse."""
    from rfc3161_client import VerificationError as TspError
    from rfc3161_client import VerifierBuilder, decode_timestamp_response

    authorities = timestamp_authorities(root)
    if not authorities:
        raise BundleRefused("the trusted root lists no timestamp authority")
    if len(set(parts.timestamps)) != len(parts.timestamps):
        raise BundleRefused("the bundle carries the same timestamp twice")
    times: list[datetime] = []
    for i, raw in enumerate(parts.timestamps, 1):
        try:
            response = decode_timestamp_response(raw)
            gen_time = response.tst_info.gen_time
        except ValueError as exc:
            raise InputError(
                source, f"Sigstore bundle: timestamp #{i} is not RFC 3161 ({exc})"
            ) from None
        outside: list[str] = []
        verified = False
        for certs, valid_for in authorities:
            if len(certs) < 2:  # a signing certificate and a root at least
                continue
            builder = VerifierBuilder(
                tsa_certificate=certs[0], intermediates=list(certs[1:-1]), roots=[certs[-1]]
            )
            try:
                builder.build().verify_message(response, parts.signature)
            except (TspError, ValueError):
                continue
            if in_window(valid_for, gen_time):
                verified = True
                break
            outside.append(_window(valid_for))
        if not verified:
            if outside:
                raise BundleRefused(
                    f"timestamp #{i} ({gen_time.isoformat()}) is signed by a timestamp authority "
                    f"of the trusted root, but outside that authority's validity window "
                    f"({'; '.join(outside)})"
                )
            raise BundleRefused(
                f"timestamp #{i} ({gen_time.isoformat()}) does not verify against any timestamp "
                "authority of the trusted root over this bundle's signature"
            )
        times.append(gen_time)
    return times


def _window(valid_for: Any) -> str:
    start = valid_for.start.isoformat() if valid_for and valid_for.start else "?"
    end = valid_for.end.isoformat() if valid_for and valid_for.end else "open"
    return f"{start} .. {end}"


def verify_tsa_only(
    doc: Mapping[str, Any],
    root: TrustedRoot | Mapping[str, Any],
    *,
    source: str | None = None,
    policy: VerificationPolicy | None = None,
) -> VerifiedBundle:
    """Verify a timestamp-only DSSE bundle against a root without transparency logs."""
    parts = parse_bundle(doc, source)
    trusted = as_root(root)
    if has_tlogs(trusted):
        raise BundleRefused(
            "the bundle has no transparency-log entry and the trusted root lists transparency "
            "logs: timestamp-only bundles are accepted only with a root without logs "
            "(--trusted-root github)"
        )
    if parts.tlog_entries:
        raise BundleRefused("the bundle has a transparency-log entry: not a timestamp-only bundle")
    if not parts.timestamps:
        raise BundleRefused("the bundle has neither a transparency-log entry nor a timestamp")
    times = verify_timestamps(parts, trusted, source)
    return finish(parts, trusted, times, "rfc3161", policy)
