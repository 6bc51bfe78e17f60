"""Large link files are not kept in memory after they verified: their digest is.

A million-artifact link file is ~150 MB; `verify` keeps the bytes of links up to
KEEP_ENVELOPE_BYTES and only the sha256 of larger ones, taken from the very bytes whose
signature verified. Everything a verification reports must be the same either way.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from provenance.errors import InputError
from provenance.links import _reader, read_link
from provenance.signing import dsse, load_public_key
from tests.conftest import links_in, verify


def _link_and_key(root: Path) -> tuple[str, dict]:
    name = next(n for n in links_in(root) if n.startswith("train."))
    path = str(root / ".provenance" / "links" / name)
    key = load_public_key(str(root / "keys" / "trainer.pub"))
    return path, {key.keyid: key}


def test_a_link_read_without_its_bytes_keeps_their_digest(signed: Path) -> None:
    path, keys = _link_and_key(signed)
    kept = read_link(path, keys)
    data = Path(path).read_bytes()
    env = dsse.parse(data, path, "link")
    digest_only = read_link(path, keys, envelope=env, digest=hashlib.sha256(data).hexdigest())
    assert kept.envelope == data and digest_only.envelope is None
    assert kept.sha256 == digest_only.sha256 == hashlib.sha256(data).hexdigest()
    assert digest_only.link == kept.link
    with pytest.raises(InputError, match=Path(path).name):
        digest_only.payload  # noqa: B018 - the property is what is tested


def test_verification_reports_the_same_links_when_none_is_kept(
    signed: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    kept = verify(cli, "--json")
    assert kept.code == 0, kept.out
    monkeypatch.setattr(_reader, "KEEP_ENVELOPE_BYTES", 0)
    not_kept = verify(cli, "--json")
    assert not_kept.code == 0, not_kept.out
    a, b = json.loads(kept.out), json.loads(not_kept.out)
    assert a["links"] == b["links"] and a["links"]  # file names and sha256 of every link
    for step, link in b["links"].items():
        on_disk = (signed / ".provenance" / "links" / link["file"]).read_bytes()
        assert link["sha256"] == hashlib.sha256(on_disk).hexdigest(), step


def _in_pieces(cli, monkeypatch: pytest.MonkeyPatch):
    with monkeypatch.context() as m:
        m.setattr(_reader, "KEEP_ENVELOPE_BYTES", 0)
        m.setattr(dsse, "_PIECE", 64)
        return verify(cli, "--json")


def test_links_read_in_pieces_verify_and_fail_alike(
    signed: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every link read a few bytes at a time (its payload decoded into the signed buffer): the
    same verdict and links, and a payload changed after signing is refused the same way."""
    kept = verify(cli, "--json")
    streamed = _in_pieces(cli, monkeypatch)
    assert kept.code == streamed.code == 0, streamed.out
    assert json.loads(kept.out)["links"] == json.loads(streamed.out)["links"]

    path, _ = _link_and_key(signed)
    data = bytearray(Path(path).read_bytes())
    at = data.index(b'"payload":"') + 200
    data[at] = ord("B") if data[at] != ord("B") else ord("C")  # still base64, payload changed
    Path(path).write_bytes(bytes(data))
    whole = verify(cli, "--json")
    pieces = _in_pieces(cli, monkeypatch)
    assert whole.code == pieces.code == 1, pieces.out
    a, b = json.loads(whole.out), json.loads(pieces.out)
    assert a["failures"] == b["failures"] and "changed after it was signed" in pieces.out
