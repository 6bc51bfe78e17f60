"""DSSE envelopes whose large payload comes first are parsed without copying the payload through
the JSON parser; the result, and every refusal, must be what the full JSON parse gives.

Whatever the byte-level paths (`dsse.parse` cutting the payload out, `dsse.read_large` reading
in pieces) accept is also checked against the standard library: `json.loads` of the whole
envelope (duplicate keys refused) and `base64` decoding give the same payload, type and
signatures.
"""

from __future__ import annotations

import base64
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provenance.errors import InputError
from provenance.signing import dsse

PAYLOAD = json.dumps({"_type": "link", "materials": {f"f{i}": i for i in range(2000)}}).encode()
B64 = base64.b64encode(PAYLOAD).decode()
SIGS = [{"keyid": "ab" * 32, "sig": base64.b64encode(b"s" * 64).decode()}]


def _standard_library(data: bytes) -> tuple[bytes, str, list[tuple[str, str]]]:
    """The oracle: the envelope read with `json.loads` and `base64` only."""

    def unique(pairs: list[tuple[str, object]]) -> dict[str, object]:
        if len({k for k, _ in pairs}) != len(pairs):
            raise ValueError("duplicate key")
        return dict(pairs)

    def b64(text: str) -> bytes:
        text += "=" * (-len(text) % 4)
        if "-" in text or "_" in text:
            return base64.urlsafe_b64decode(text)
        return base64.b64decode(text, validate=True)

    doc = json.loads(data, object_pairs_hook=unique)
    sigs = [(s.get("keyid", ""), b64(s["sig"]).hex()) for s in doc["signatures"]]
    return b64(doc["payload"]), doc["payloadType"], sigs


def _agrees_with_json(data: bytes, got: tuple[bytes, str, list[tuple[str, str]]]) -> None:
    assert got == _standard_library(data), data[:200]


def envelope(**fields: object) -> bytes:
    doc = {"payload": B64, "payloadType": dsse.IN_TOTO_PAYLOAD_TYPE, "signatures": SIGS}
    doc.update(fields)
    return json.dumps(doc, separators=(",", ":")).encode()


def test_payload_first_parses_like_the_full_json() -> None:
    data = envelope()
    assert data.startswith(b'{"payload":"') and len(B64) > 4096
    got = dsse.parse(data, "x.link")
    reordered = json.dumps(dict(reversed(list(json.loads(data).items())))).encode()
    slow = dsse.parse(reordered, "x.link")
    assert got.payload == slow.payload == PAYLOAD
    assert (got.payload_type, got.signatures) == (slow.payload_type, slow.signatures)


def test_a_second_payload_key_is_refused() -> None:
    data = envelope()[:-1] + b',"payload":"QUFB"}'
    with pytest.raises(InputError, match="duplicate key 'payload'"):
        dsse.parse(data, "x.link")


def test_payload_with_json_escapes_takes_the_full_parse() -> None:
    escaped = B64[:100] + "\\/" + B64[100:]  # "\/" is "/" in JSON, and not a base64 character
    data = envelope().replace(B64.encode(), escaped.encode(), 1)
    assert dsse.parse(data, "x.link").payload == base64.b64decode(escaped.replace("\\/", "/"))


def test_a_nested_payload_key_is_not_taken_for_the_envelopes() -> None:
    data = b'{"x":{"payload":"' + B64.encode() + b'"},' + envelope()[1:]
    assert dsse.parse(data, "x.link").payload == PAYLOAD


@pytest.mark.parametrize(
    ("tail", "words"),
    [
        (b',"signatures":[]}', "duplicate key"),
        (b',"extra":NaN}', "NaN"),
        (b',"deep":' + b"[" * 80 + b"]" * 80 + b"}", "nested deeper"),
    ],
)
def test_the_rest_of_the_envelope_is_still_checked(tail: bytes, words: str) -> None:
    with pytest.raises(InputError, match=words):
        dsse.parse(envelope()[:-1] + tail, "x.link")


def test_url_safe_and_unpadded_payloads_decode_as_on_the_full_path() -> None:
    odd = bytes(range(256)) * 20 + b"?!"  # encodes with '+' and '/', and needs padding
    std = base64.b64encode(odd).decode()
    assert "=" in std and ("+" in std or "/" in std)
    for text in (std, std.rstrip("="), base64.urlsafe_b64encode(odd).decode()):
        data = envelope(payload=text)
        assert data.startswith(b'{"payload":"')
        assert dsse.parse(data, "x.link").payload == odd


@pytest.mark.parametrize("bad", ["!", "A===", "=AAA"])
def test_a_payload_that_is_not_base64_is_refused_by_name(bad: str) -> None:
    data = envelope(payload=B64[:4100] + bad + B64[4100:])
    with pytest.raises(InputError, match="DSSE payload is not valid base64"):
        dsse.parse(data, "x.link")


# pybase64 decodes large payloads only when they are the canonical encoding of the result:
# there every strict decoder agrees, so the outcome never depends on which one ran.
CHUNK = base64.b64encode(bytes(range(256)) * 24)  # 8 KiB, '+' and '/' included


def _outcome(data: bytes, monkeypatch: pytest.MonkeyPatch, fast: bool) -> object:
    with monkeypatch.context() as m:
        if not fast:
            m.setattr(dsse, "_pybase64", lambda: None)
        try:
            return dsse.parse(data, "x.link").payload
        except InputError as exc:
            return str(exc)


@pytest.mark.parametrize(
    "text",
    [
        CHUNK,
        CHUNK[:-1] + b"B",  # trailing bits set: binascii accepts it, not canonical
        CHUNK + b"QR==",  # the same, padded
        CHUNK + b"QQ==QQ==",  # padding in the middle
        CHUNK + b"Q===",
        CHUNK + b"\\n",  # an escape: not base64 in the cut
        CHUNK[:4000] + b" " + CHUNK[4000:],
        CHUNK + b"QQ",  # unpadded
        CHUNK.replace(b"+", b"-"),  # URL-safe
    ],
)
def test_payload_decoding_does_not_depend_on_pybase64(
    text: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = envelope(payload="X").replace(b'"X"', b'"' + text + b'"', 1)
    assert dsse._pybase64() is not None  # a dependency: the fast path is what runs
    assert _outcome(data, monkeypatch, True) == _outcome(data, monkeypatch, False)


@pytest.mark.parametrize("piece", [3, 6, 3 << 20])
def test_canonical_decoding_equals_binascii_on_random_text(
    piece: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Whatever the size of the pieces the result is encoded again in (one byte off anywhere
    in the text is caught)."""
    import binascii
    import random

    monkeypatch.setattr(dsse, "_CANONICAL_PIECE", piece)
    rnd = random.Random(7)
    alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_ \n"
    for _ in range(3000):
        raw = rnd.randbytes(rnd.randint(0, 40))
        text = bytearray(base64.b64encode(raw))
        for _ in range(rnd.choice([0, 0, 1, 2])):  # a few edits: insert, replace, delete
            at = rnd.randint(0, len(text))
            op = rnd.randint(0, 2)
            if op == 0:
                text[at:at] = bytes([rnd.choice(alphabet)])
            elif op == 1 and at < len(text):
                text[at] = rnd.choice(alphabet)
            elif at < len(text):
                del text[at]
        framed = b"xy" + bytes(text) + b"z"
        got = dsse._b64_canonical(framed, 2, len(framed) - 1)
        if got is not None:
            assert got == binascii.a2b_base64(bytes(text), strict_mode=True)


# --- large envelopes read in pieces ------------------------------------------------------------
# `read_large` decodes the payload straight into the PAE buffer, a piece of the file at a time.
# Whatever it accepts must be exactly what reading the whole file gives (payload, type,
# signatures, and the digest of the very bytes read); anything unusual returns None, and the
# whole-file path then decides.


def _large_outcome(
    tmp_path, data: bytes, monkeypatch: pytest.MonkeyPatch, piece: int
) -> tuple[object, object]:
    import hashlib

    path = tmp_path / "x.link"
    path.write_bytes(data)
    with monkeypatch.context() as m:
        m.setattr(dsse, "_PIECE", piece)
        try:
            got = dsse.read_large(str(path), "link")
        except InputError as exc:
            got = str(exc)
    try:
        whole = dsse.parse(data, str(path), "link")
        expected: object = (whole.payload, whole.payload_type, whole.signatures)
        _agrees_with_json(data, (whole.payload, whole.payload_type, whole.signatures))
    except InputError as exc:
        expected = str(exc)
    if isinstance(got, tuple):
        env, digest = got
        assert digest == hashlib.sha256(data).hexdigest()
        _agrees_with_json(data, (env.payload, env.payload_type, env.signatures))
        return (env.payload, env.payload_type, env.signatures), expected
    return got, expected


@pytest.mark.parametrize("piece", [4, 8, 12, 4096, 4 << 20])
def test_a_large_envelope_read_in_pieces_equals_the_whole_read(
    tmp_path, piece: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    for payload in (PAYLOAD, PAYLOAD + b"x", PAYLOAD + b"xy", b""):
        data = envelope(payload=base64.b64encode(payload).decode())
        got, expected = _large_outcome(tmp_path, data, monkeypatch, piece)
        assert got == expected and isinstance(got, tuple) and got[0] == payload


@pytest.mark.parametrize(
    "text",
    [
        CHUNK[:-1] + b"B",  # trailing bits set: not canonical
        CHUNK + b"QR==",
        CHUNK + b"QQ==QQ==",  # padding in the middle
        CHUNK[:8] + b"QQ==" + CHUNK[8:],  # padding at a piece's end, mid-string
        CHUNK + b"Q===",
        CHUNK + b"\\n",  # an escape
        CHUNK[:4000] + b" " + CHUNK[4000:],
        CHUNK + b"QQ",  # unpadded
        CHUNK.replace(b"+", b"-"),  # URL-safe
        CHUNK + b'"',  # the string ends early: the rest is not JSON
    ],
)
def test_odd_payloads_in_pieces_fall_back_or_agree(
    tmp_path, text: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = envelope(payload="X").replace(b'"X"', b'"' + text + b'"', 1)
    for piece in (4, 8, 4096):
        got, expected = _large_outcome(tmp_path, data, monkeypatch, piece)
        assert got is None or got == expected, (piece, got)


@pytest.mark.parametrize(
    "data",
    [
        envelope()[:-1],  # truncated: no closing brace
        envelope()[: len(envelope()) // 2],  # cut inside the payload: no end to the string
        envelope(payloadType=5),
        envelope(signatures="x"),
        envelope() + b"x",
        envelope().replace(b'"payloadType"', b'"payload":"","payloadType"'),  # a second payload
        json.dumps({"payloadType": dsse.IN_TOTO_PAYLOAD_TYPE, "payload": B64}).encode(),
        b'{"payload":"' + B64.encode() + b'"' + b" " * 70 + b',"payloadType":"x","signatures":[]}',
    ],
)
def test_malformed_large_envelopes_never_pass_in_pieces(
    tmp_path, data: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    got, expected = _large_outcome(tmp_path, data, monkeypatch, 8)
    assert got is None or got == expected


def test_a_large_envelope_verifies_over_the_pae_built_while_reading(tmp_path) -> None:
    """The signature is checked over the buffer the payload was decoded into; the payload is
    then that buffer with its header taken off (no copy), and a changed byte fails."""
    from provenance.signing import generate, load_public_key, load_signer

    generate("k", str(tmp_path))
    signer = load_signer(str(tmp_path / "k"))
    key = load_public_key(str(tmp_path / "k.pub"))
    payload = bytearray(PAYLOAD)
    data = b"".join(dsse.signed_chunks(payload, signer))
    path = tmp_path / "x.link"
    path.write_bytes(data)
    got = dsse.read_large(str(path), "link")
    assert got is not None
    env, _ = got
    assert env.verified_keyids({key.keyid: key}) == [key.keyid]
    buffer = env.payload_buffer
    assert isinstance(buffer, bytearray) and buffer == PAYLOAD
    assert env.payload_buffer is buffer  # the header went once, in place
    assert env.verified_keyids({key.keyid: key}) == [key.keyid]  # still verifies afterwards
    tampered = bytearray(data)
    tampered[40] ^= 1 if tampered[40] != ord("A") else 2
    path.write_bytes(tampered)
    bad = dsse.read_large(str(path), "link")
    assert bad is None or bad[0].verified_keyids({key.keyid: key}) == []


def test_a_large_read_refuses_what_the_whole_read_refuses(tmp_path) -> None:
    """Not a regular file, missing, or over the size limit: the same named refusals."""
    import os

    fifo = tmp_path / "fifo.link"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        dsse.read_large(str(fifo), "link")
    with pytest.raises(InputError, match="not found"):
        dsse.read_large(str(tmp_path / "missing.link"), "link")
    big = tmp_path / "big.link"
    big.write_bytes(envelope())
    with pytest.MonkeyPatch.context() as m:
        m.setattr(dsse, "MAX_ENVELOPE_BYTES", 100)
        m.setattr(dsse, "_PIECE", 8)
        with pytest.raises(InputError, match="larger than 100 bytes") as refused:
            dsse.read_large(str(big), "link")
    assert str(big) in str(refused.value)


def test_random_edits_of_a_large_envelope_never_disagree_with_the_whole_read(
    tmp_path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import random

    rnd = random.Random(11)
    alphabet = b'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=-_ \n"\\{},:'
    for _ in range(300):
        raw = rnd.randbytes(rnd.randint(0, 60))
        data = bytearray(envelope(payload=base64.b64encode(raw).decode(), signatures=[]))
        for _ in range(rnd.choice([0, 1, 2])):
            at = rnd.randint(0, len(data) - 1)
            if rnd.random() < 0.5:
                data[at] = rnd.choice(alphabet)
            else:
                data[at:at] = bytes([rnd.choice(alphabet)])
        got, expected = _large_outcome(tmp_path, bytes(data), monkeypatch, rnd.choice([4, 8]))
        assert got is None or got == expected, bytes(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.binary(min_size=3000, max_size=6000),
    st.sampled_from([b"", b"\\/", b" ", b"\\n", b"=", b"-", b'"']),
    st.integers(0, 8000),
    st.sampled_from([b"", b',"payload":"QUFB"', b',"extra":NaN', b',"x":"\\ud800"']),
)
def test_whatever_parse_accepts_the_standard_library_reads_alike(
    raw: bytes, insert: bytes, at: int, tail: bytes
) -> None:
    """Payloads large enough for the cut-out path, with an edit in the base64 and a decoy or
    refusable member after it: a refusal is allowed, a different reading is not."""
    text = base64.b64encode(raw)
    at = min(at, len(text))
    text = text[:at] + insert + text[at:]
    data = b'{"payload":"' + text + b'","payloadType":"t","signatures":[]' + tail + b"}"
    try:
        got = dsse.parse(data, "x.link")
    except InputError:
        return
    _agrees_with_json(data, (got.payload, got.payload_type, got.signatures))
