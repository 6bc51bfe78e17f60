"""DSSE envelopes: sign once over the serialised payload; verify the signature before parsing it."""

from __future__ import annotations

import base64
import binascii
import functools
import re
import sys
from collections.abc import Iterator
from typing import Any

from provenance._fs import canonical_json, load_json_bounded, read_bounded
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
    """The envelope as compact, key-sorted JSON bytes (the file format)."""
    return canonical_json(envelope)


def sign_detached(
    payload: bytes | bytearray, signer: Any, payload_type: str = IN_TOTO_PAYLOAD_TYPE
) -> dict[str, Any]:
    """One envelope signature entry ({"keyid", "sig" in base64}) over the PAE of `payload`.

    A bytearray payload signed by a key in memory gets the PAE header put in front of it in
    place (and taken off again) instead of being copied: a million-artifact link is ~100 MB.
    """
    from securesystemslib.signer import CryptoSigner

    kind = payload_type.encode()
    header = b"DSSEv1 %d %b %d " % (len(kind), kind, len(payload))
    if isinstance(payload, bytearray) and isinstance(signer, CryptoSigner):
        payload[0:0] = header
        try:
            signature = signer.sign(payload)  # type: ignore[arg-type]  # any buffer
        finally:
            del payload[: len(header)]
    else:
        signature = signer.sign(header + payload)
    entry = dict(signature.to_dict())
    entry["sig"] = base64.b64encode(bytes.fromhex(entry["sig"])).decode()
    return entry


def dump_chunks(
    payload: bytes | bytearray,
    signatures: list[dict[str, Any]],
    payload_type: str = IN_TOTO_PAYLOAD_TYPE,
    chunk: int = 3 << 20,
) -> Iterator[bytes]:
    """`dumps` of the envelope, in pieces: the payload's base64 is never one whole string.

    Base64 of consecutive 3-byte-aligned pieces concatenates to the base64 of the whole, and its
    alphabet needs no JSON escaping, so the bytes equal `canonical_json` of the envelope dict.
    """
    yield b'{"payload":"'
    view = memoryview(payload)
    fast = _pybase64() if len(view) > chunk else None  # (importing it costs ~2 ms)
    encode = base64.b64encode if fast is None else fast.b64encode  # the same bytes, ~3x faster
    for start in range(0, len(view), chunk):
        yield encode(view[start : start + chunk])
    yield b'","payloadType":' + canonical_json(payload_type)
    yield b',"signatures":' + canonical_json(signatures) + b"}"


class ParsedEnvelope:
    """A structurally valid DSSE envelope whose signatures have not been checked yet."""

    def __init__(
        self, payload: bytes, payload_type: str, signatures: list[tuple[str, str]], path: str
    ):
        self.payload = payload
        self.payload_type = payload_type
        self.signatures = signatures  # (keyid, hex signature)
        self.path = path

    @property
    def keyids(self) -> list[str]:
        """The key ids the signatures claim (unverified)."""
        return [k for k, _ in self.signatures]

    def verified_keyids(self, keys: dict[str, Any]) -> list[str]:
        """Key ids among `keys` whose signature over this envelope verifies (PAE computed once)."""
        from securesystemslib.dsse import Envelope
        from securesystemslib.exceptions import VerificationError
        from securesystemslib.signer import Signature

        if not keys:
            return []
        env = Envelope(
            self.payload, self.payload_type, {k: Signature(k, s) for k, s in self.signatures}
        )
        try:
            return sorted(env.verify(list(keys.values()), 1))
        except VerificationError:
            return []


# An envelope that opens with its payload (ours, sorted keys) spelled in standard base64: the
# payload is cut out and decoded, and the rest parsed as JSON, so the (large) payload is not
# copied through the JSON parser and its checks. A JSON escape in the string is no base64
# character, so a cut that decodes is exactly the string's value. Anything unusual takes the
# ordinary path.
_LEADING_PAYLOAD = re.compile(rb'\{\s*"payload"\s*:\s*"')


def _load(data: bytes, path: str, what: str) -> tuple[Any, bytes | None]:
    """The envelope document, and its decoded payload when it was cut out.

    (`doc["payload"]` is then empty in the document.)
    """
    m = _LEADING_PAYLOAD.match(data)
    end = data.find(b'"', m.end()) if m else -1
    if m and end - m.end() > 4096 and sys.version_info >= (3, 11):
        text: bytes | memoryview = memoryview(data)[m.end() : end]  # no copy of the payload
        if len(text) % 4:
            text = bytes(text) + b"=" * (-len(text) % 4)
        raw = _b64_canonical(data, m.end(), end) if len(text) == end - m.end() else None
        if raw is None:
            try:
                raw = binascii.a2b_base64(text, strict_mode=True)
            except binascii.Error:
                raw = None
        if raw is not None:
            doc = load_json_bounded(data[: m.end()] + data[end:], path, what=what)
            if isinstance(doc, dict) and doc.get("payload") == "":
                return doc, raw
    return load_json_bounded(data, path, what=what), None


def _b64_canonical(data: bytes, start: int, end: int) -> bytes | None:
    """`data[start:end]` decoded by pybase64 when it is the canonical encoding, else None.

    pybase64 (SIMD) is ~4x faster than binascii on a 15 MB payload. Every strict decoder
    maps the canonical encoding of `raw` to `raw`, so accepting only that can never make
    this path disagree with `binascii.a2b_base64(strict_mode=True)`.
    """
    fast = _pybase64()
    if fast is None:
        return None
    try:
        raw: bytes = fast.b64decode(memoryview(data)[start:end], validate=True)
    except (binascii.Error, ValueError):
        return None
    if (len(raw) + 2) // 3 * 4 != end - start:
        return None
    # Encoded again piece by piece and compared in place: no second copy of a large text.
    view = memoryview(raw)
    for at in range(0, len(raw), _CANONICAL_PIECE):
        piece = fast.b64encode(view[at : at + _CANONICAL_PIECE])
        if not data.startswith(piece, start + at // 3 * 4):
            return None
    return raw


_CANONICAL_PIECE = 3 << 20  # a multiple of 3: the pieces' encodings join without padding


@functools.cache
def _pybase64() -> Any:
    """The pybase64 module, or None where it is not installed (binascii then)."""
    try:
        import pybase64
    except ImportError:  # pragma: no cover - tests replace this function to take that path
        return None
    return pybase64


def parse(data: bytes, path: str, what: str = "envelope") -> ParsedEnvelope:
    """Parse envelope JSON without trusting anything in it; errors name `path`."""
    if len(data) > MAX_ENVELOPE_BYTES:
        raise InputError(path, f"larger than {MAX_ENVELOPE_BYTES} bytes")
    doc, cut = _load(data, path, what)
    if not isinstance(doc, dict) or not {"payload", "payloadType", "signatures"} <= doc.keys():
        if isinstance(doc, dict) and "signed" in doc:
            fix = (
                "re-record the step with `in-toto-run --use-dsse …` (or `provenance run`)"
                if what == "link"
                else "sign it again as a DSSE envelope (in-toto: --use-dsse)"
            )
            raise InputError(
                path,
                f"legacy in-toto metadata (Metablock); only DSSE envelopes are accepted: {fix}",
            )
        raise InputError(
            path, f"{what} is not a DSSE envelope (needs payload, payloadType, signatures)"
        )
    payload, ptype, sigs = doc["payload"], doc["payloadType"], doc["signatures"]
    if not isinstance(payload, str) or not isinstance(ptype, str) or not isinstance(sigs, list):
        raise InputError(path, "DSSE envelope fields have wrong types")
    raw = _b64(payload, path, "payload") if cut is None else cut
    signatures: list[tuple[str, str]] = []
    for s in sigs:
        if not (
            isinstance(s, dict)
            and isinstance(s.get("keyid", ""), str)
            and isinstance(s.get("sig"), str)
        ):
            raise InputError(path, "DSSE signature entry is malformed")
        keyid = s.get("keyid", "")
        if any(k == keyid for k, _ in signatures):
            raise InputError(path, f"DSSE envelope has two signatures for key {keyid[:8]}")
        signatures.append((keyid, _b64(s["sig"], path, "signature").hex()))
    return ParsedEnvelope(raw, ptype, signatures, path)


def _b64(text: str | bytes, path: str, what: str) -> bytes:
    """DSSE allows standard or URL-safe base64, with or without padding."""
    try:
        data = text.encode("ascii") if isinstance(text, str) else text
        data += b"=" * (-len(data) % 4)
        if b"-" in data or b"_" in data:
            return base64.urlsafe_b64decode(data)
        if sys.version_info >= (3, 11):  # one pass in C, no copy through a regex check
            return binascii.a2b_base64(data, strict_mode=True)
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError):
        raise InputError(path, f"DSSE {what} is not valid base64") from None


def read(path: str, what: str = "envelope") -> ParsedEnvelope:
    """Read and parse a signed file; `what` ("layout", "link") names it in errors."""
    return parse(read_bounded(path, MAX_ENVELOPE_BYTES, what), path, what)
