"""DSSE envelopes: sign once over the serialised payload; verify the signature before parsing it."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

from provenance.errors import InputError

IN_TOTO_PAYLOAD_TYPE = "application/vnd.in-toto+json"
MAX_ENVELOPE_BYTES = 512 * 1024 * 1024  # a 300k-artifact link is ~40 MB; leave ample room


def sign(payload: bytes, signer: Any, payload_type: str = IN_TOTO_PAYLOAD_TYPE) -> dict[str, Any]:
    """Return the envelope dict for `payload` signed by `signer` (one signature)."""
    from securesystemslib.dsse import Envelope

    env = Envelope(payload=payload, payload_type=payload_type, signatures={})
    env.sign(signer)
    return dict(env.to_dict())


def dumps(envelope: dict[str, Any]) -> bytes:
    return json.dumps(envelope, sort_keys=True, separators=(",", ":")).encode()


class ParsedEnvelope:
    """A structurally valid DSSE envelope whose signatures have not been checked yet."""

    def __init__(
        self, payload: bytes, payload_type: str, signatures: list[tuple[str, str]], path: str
    ):
        self.payload = payload
        self.payload_type = payload_type
        self.signatures = signatures  # (keyid, base64 sig)
        self.path = path

    @property
    def keyids(self) -> list[str]:
        return [k for k, _ in self.signatures]

    def verified_keyids(self, keys: dict[str, Any]) -> list[str]:
        """Key ids among `keys` whose signature over this envelope verifies."""
        from securesystemslib.dsse import Envelope
        from securesystemslib.exceptions import VerificationError

        env = Envelope.from_dict(
            {
                "payload": base64.b64encode(self.payload).decode(),
                "payloadType": self.payload_type,
                "signatures": [{"keyid": k, "sig": s} for k, s in self.signatures],
            }
        )
        good = []
        for keyid, key in keys.items():
            try:
                env.verify([key], 1)
            except VerificationError:
                continue
            good.append(keyid)
        return good


def parse(data: bytes, path: str) -> ParsedEnvelope:
    """Parse envelope JSON without trusting anything in it; errors name `path`."""
    if len(data) > MAX_ENVELOPE_BYTES:
        raise InputError(path, f"larger than {MAX_ENVELOPE_BYTES} bytes")
    try:
        doc = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(path, f"not JSON ({exc})") from None
    except RecursionError:
        raise InputError(path, "JSON nested too deeply") from None
    if not isinstance(doc, dict) or not {"payload", "payloadType", "signatures"} <= doc.keys():
        if isinstance(doc, dict) and "signed" in doc:
            raise InputError(
                path, "legacy in-toto metadata (Metablock); only DSSE envelopes are accepted"
            )
        raise InputError(path, "not a DSSE envelope (needs payload, payloadType, signatures)")
    payload, ptype, sigs = doc["payload"], doc["payloadType"], doc["signatures"]
    if not isinstance(payload, str) or not isinstance(ptype, str) or not isinstance(sigs, list):
        raise InputError(path, "DSSE envelope fields have wrong types")
    try:
        raw = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError):
        raise InputError(path, "DSSE payload is not valid base64") from None
    signatures: list[tuple[str, str]] = []
    for s in sigs:
        if not (
            isinstance(s, dict)
            and isinstance(s.get("keyid", ""), str)
            and isinstance(s.get("sig"), str)
        ):
            raise InputError(path, "DSSE signature entry is malformed")
        signatures.append((s.get("keyid", ""), s["sig"]))
    return ParsedEnvelope(raw, ptype, signatures, path)


def read(path: str) -> ParsedEnvelope:
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_ENVELOPE_BYTES + 1)
    except FileNotFoundError:
        raise InputError(path, "not found") from None
    except OSError as exc:
        raise InputError(path, f"cannot read: {exc.strerror}") from None
    return parse(data, path)
