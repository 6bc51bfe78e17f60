"""DSSE envelopes: sign once over the serialised payload; verify the signature before parsing it."""

from __future__ import annotations

import base64
import binascii
import functools
import hashlib
import re
import sys
import threading
from collections.abc import Callable, Iterator
from typing import Any

from provenance._fs import canonical_json, load_json_bounded, read_bounded, read_chunks
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


def signed_chunks(
    payload: bytes | bytearray,
    signer: Any,
    payload_type: str = IN_TOTO_PAYLOAD_TYPE,
    chunk: int = 3 << 20,
) -> Iterator[bytes]:
    """`dumps(sign(payload, signer))` in pieces, the payload's base64 never one whole string.

    A key in memory (`CryptoSigner`) signs on another thread while the payload's base64 is
    produced here: the signature is the envelope's last member, and signing a large payload
    (ed25519 hashes it twice) releases the GIL. Any other signer (KMS, HSM, Sigstore: it may
    prompt for a PIN or wait on the network) signs first, on the caller's thread. A bytearray
    payload signed by a key in memory gets the PAE header put in front of it in place (and
    taken off again when the last piece is made or the consumer stops) instead of being copied:
    a million-artifact link is ~100 MB. Base64 of consecutive 3-byte-aligned pieces concatenates
    to the base64 of the whole, and its alphabet needs no JSON escaping, so the bytes equal
    `canonical_json` of the envelope dict. A signer that fails raises before the last piece.
    """
    from securesystemslib.signer import CryptoSigner

    kind = payload_type.encode()
    header = b"DSSEv1 %d %b %d " % (len(kind), kind, len(payload))
    done: dict[str, Any] = {}
    if not isinstance(signer, CryptoSigner):
        done["sig"] = signer.sign(header + payload)
        yield from _envelope_pieces(memoryview(payload), payload_type, chunk, done)
        return
    in_place = payload if isinstance(payload, bytearray) else None
    if in_place is not None:
        in_place[0:0] = header
        pae: bytes | bytearray = in_place
        body = memoryview(in_place)[len(header) :]
    else:
        pae = header + payload
        body = memoryview(payload)

    def sign() -> None:
        try:
            done["sig"] = signer.sign(pae)  # type: ignore[arg-type]  # any buffer
        except BaseException as exc:  # noqa: BLE001 - raised on the consumer's thread
            done["error"] = exc

    thread = threading.Thread(target=sign, name="provenance-sign", daemon=True)
    thread.start()
    try:
        yield from _envelope_pieces(body, payload_type, chunk, done, thread.join)
    finally:
        try:
            thread.join()  # the signer holds the buffer until it returns
        finally:
            body.release()
            if in_place is not None:
                del in_place[: len(header)]


def _envelope_pieces(
    body: memoryview,
    payload_type: str,
    chunk: int,
    done: dict[str, Any],
    signed: Callable[[], None] | None = None,
) -> Iterator[bytes]:
    """The envelope's bytes around `body`; the signature (`done`) is read after `signed()`."""
    yield b'{"payload":"'
    fast = _pybase64() if len(body) > chunk else None  # (importing it costs ~2 ms)
    encode = base64.b64encode if fast is None else fast.b64encode  # same bytes, ~3x faster
    for start in range(0, len(body), chunk):
        with body[start : start + chunk] as piece:
            yield encode(piece)
    if signed is not None:
        signed()
    if "error" in done:
        raise done["error"]
    entry = dict(done["sig"].to_dict())
    entry["sig"] = base64.b64encode(bytes.fromhex(entry["sig"])).decode()
    yield (
        b'","payloadType":'
        + canonical_json(payload_type)
        + b',"signatures":'
        + canonical_json([entry])
        + b"}"
    )


class ParsedEnvelope:
    """A structurally valid DSSE envelope whose signatures have not been checked yet."""

    def __init__(
        self,
        payload: bytes | bytearray,
        payload_type: str,
        signatures: list[tuple[str, str]],
        path: str,
        *,
        pae_header: int = 0,
    ):
        # With `pae_header` (a large envelope read in pieces), `payload` is the whole PAE and
        # the payload its tail: the signature is checked over the buffer as it is, and reading
        # `payload` takes the header off in place, so the payload never exists twice.
        self._buffer = payload
        self._header = pae_header
        self.payload_type = payload_type
        self.signatures = signatures  # (keyid, hex signature)
        self.path = path

    @property
    def payload(self) -> bytes:
        """The payload bytes (a copy, for an envelope read in pieces: see `payload_buffer`)."""
        buffer = self.payload_buffer
        return buffer if isinstance(buffer, bytes) else bytes(buffer)

    @property
    def payload_buffer(self) -> bytes | bytearray:
        """The payload as held (no copy).

        For an envelope read in pieces: the PAE buffer with its header taken off in place.
        """
        if self._header:
            assert isinstance(self._buffer, bytearray)
            del self._buffer[: self._header]  # O(1): CPython moves the buffer's start
            self._header = 0
        return self._buffer

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
        signatures = {k: Signature(k, s) for k, s in self.signatures}
        env = (
            _prepared_envelope()(self._buffer, self.payload_type, signatures)
            if self._header
            else Envelope(self.payload, self.payload_type, signatures)
        )
        try:
            return sorted(env.verify(list(keys.values()), 1))
        except VerificationError:
            return []


@functools.cache
def _prepared_envelope() -> type:
    """The Envelope class of securesystemslib, verified over a PAE built while reading."""
    from securesystemslib.dsse import Envelope

    class Prepared(Envelope):
        def __init__(self, pae: bytearray, payload_type: str, signatures: Any) -> None:
            super().__init__(b"", payload_type, signatures)
            self._prepared = pae

        def pae(self) -> bytearray:  # type: ignore[override]  # any buffer verifies
            return self._prepared

    return Prepared


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
    return _envelope(doc, cut, path, what)


def _envelope(
    doc: Any, cut: bytes | bytearray | None, path: str, what: str, pae_header: int = 0
) -> ParsedEnvelope:
    """The checked fields of envelope document `doc` (its payload already decoded: `cut`)."""
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
    return ParsedEnvelope(raw, ptype, signatures, path, pae_header=pae_header)


def read_large(path: str, what: str = "envelope") -> tuple[ParsedEnvelope, str] | None:
    """A large envelope read a piece at a time, and the sha256 of its bytes.

    The payload's base64 is decoded straight into the buffer the signature is checked over
    (its PAE), so neither the whole file nor a second copy of the payload is ever held: a
    million-artifact link is ~150 MB of base64 around ~115 MB of payload. Everything comes
    from one read of the file, so the digest is of exactly the bytes that were decoded. None
    when the envelope does not open with a payload in canonical standard base64: the caller
    then reads it whole (`parse`), which names any problem.
    """
    fast = _pybase64()
    if fast is None:
        return None
    digest = hashlib.sha256()
    chunks = read_chunks(path, MAX_ENVELOPE_BYTES, _PIECE, what)
    try:
        pending = b""
        for piece in chunks:
            digest.update(piece)
            pending += piece
            if len(pending) >= 64:
                break
        m = _LEADING_PAYLOAD.match(pending)
        if m is None:
            return None
        head, pending = pending[: m.end()], pending[m.end() :]
        pae = bytearray(_RESERVE)  # the header goes in front of the payload at the end
        while (quote := pending.find(b'"')) < 0:
            usable = max(0, len(pending) - 1) // 4 * 4  # the last quantum may be padded
            if not _decode_into(pae, pending[:usable], fast, final=False):
                return None
            pending = pending[usable:]
            piece = next(chunks, b"")
            if not piece:
                return None  # no end to the string
            digest.update(piece)
            pending += piece
        if not _decode_into(pae, pending[:quote], fast, final=True):
            return None
        tail = bytearray(pending[quote:])
        for piece in chunks:
            digest.update(piece)
            tail += piece
    finally:
        chunks.close()
    doc = load_json_bounded(head + tail, path, what=what)
    ptype = doc.get("payloadType") if isinstance(doc, dict) else None
    if not isinstance(doc, dict) or doc.get("payload") != "" or not isinstance(ptype, str):
        return None
    try:
        kind = ptype.encode("utf-8")
    except UnicodeEncodeError:
        return None
    header = b"DSSEv1 %d %b %d " % (len(kind), kind, len(pae) - _RESERVE)
    if len(header) > _RESERVE:
        return None
    skip = _RESERVE - len(header)
    pae[skip:_RESERVE] = header
    del pae[:skip]  # O(1): CPython moves the buffer's start
    return _envelope(doc, pae, path, what, pae_header=len(header)), digest.hexdigest()


_PIECE = 4 << 20  # bytes read at a time (a multiple of 4: whole base64 quanta)
_RESERVE = 1 << 12  # room for the PAE header ("DSSEv1 <n> <payload type> <n> ")


def _decode_into(pae: bytearray, text: bytes, fast: Any, *, final: bool) -> bool:
    """Append the decoded `text` to `pae` if it is canonical base64 (padding only at the end)."""
    if not text:
        return True
    if len(text) % 4:
        return False
    try:
        raw = fast.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return False
    # Every strict decoder maps the canonical encoding to these bytes (see _b64_canonical).
    if (not final and len(raw) % 3) or fast.b64encode(raw) != text:
        return False
    pae += raw
    return True


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
