"""DSSE signature checks for attestations, before anything in the payload is looked at.

Differs from the link reader in two ways that other producers need: a signature without a key
id (allowed by DSSE) is tried against every trusted key, and an ECDSA signature in the raw
``r || s`` form (IEEE P1363, as Go's signers and Cloud KMS emit it) is accepted like its DER form.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast

from provenance.errors import UsageError
from provenance.signing.dsse import ParsedEnvelope

_P1363_SIZES = {"ecdsa-sha2-nistp256": 64, "ecdsa-sha2-nistp384": 96}


def key_map(keys: Mapping[str, Any] | Iterable[Any]) -> dict[str, Any]:
    """Trusted keys by key id, from a mapping or any iterable of securesystemslib Keys."""
    if isinstance(keys, Mapping):
        out: dict[str, Any] = dict(keys)
    else:
        out = {key.keyid: key for key in cast("Iterable[Any]", keys)}
    if not out:
        raise UsageError("no trusted public key given to verify the attestation")
    return out


def _candidate_signatures(hexsig: str, scheme: str) -> list[str]:
    size = _P1363_SIZES.get(scheme)
    if size is None or len(hexsig) != 2 * size:
        return [hexsig]
    from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

    raw = bytes.fromhex(hexsig)
    half = size // 2
    der = encode_dss_signature(int.from_bytes(raw[:half], "big"), int.from_bytes(raw[half:], "big"))
    return [hexsig, der.hex()]


def verified_keyids(env: ParsedEnvelope, keys: Mapping[str, Any]) -> list[str]:
    """Ids of the trusted keys whose signature over `env` (PAE) verifies."""
    from securesystemslib.dsse import Envelope
    from securesystemslib.exceptions import UnverifiedSignatureError
    from securesystemslib.signer import Signature

    pae = Envelope(env.payload, env.payload_type, {}).pae()
    good: set[str] = set()
    for claimed, hexsig in env.signatures:
        for keyid, key in keys.items():
            if claimed not in ("", keyid) or keyid in good:
                continue
            for candidate in _candidate_signatures(hexsig, getattr(key, "scheme", "")):
                try:
                    key.verify_signature(Signature(keyid, candidate), pae)
                except (UnverifiedSignatureError, ValueError):
                    continue
                good.add(keyid)
                break
    return sorted(good)
