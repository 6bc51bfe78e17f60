"""Key generation and loading: permissions, refusal to overwrite, bad key files."""

from __future__ import annotations

import os
import stat
from pathlib import Path

from securesystemslib.signer import SSlibKey

from provenance.signing import load_public_key, load_signer


def test_keygen_writes_private_key_0600_and_prints_keyid(tmp_path: Path, cli) -> None:
    r = cli("keygen", "alice", "--dir", tmp_path / "k")
    assert r.code == 0
    priv, pub = tmp_path / "k" / "alice", tmp_path / "k" / "alice.pub"
    assert stat.S_IMODE(priv.stat().st_mode) == 0o600
    assert priv.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    keyid = load_public_key(str(pub)).keyid
    assert f"keyid {keyid}" in r.out
    assert load_signer(str(priv)).public_key.keyid == keyid


def test_keygen_ecdsa_json(tmp_path: Path, cli) -> None:
    r = cli("keygen", "bob", "--dir", tmp_path, "--type", "ecdsa", "--json")
    assert r.code == 0 and '"keyid"' in r.out
    assert load_public_key(str(tmp_path / "bob.pub")).scheme == "ecdsa-sha2-nistp256"


def test_keygen_refuses_to_overwrite(tmp_path: Path, cli) -> None:
    assert cli("keygen", "alice", "--dir", tmp_path).code == 0
    before = (tmp_path / "alice").read_bytes()
    r = cli("keygen", "alice", "--dir", tmp_path)
    assert r.code == 3
    assert "already exists" in r.err and "--force" in r.err
    assert (tmp_path / "alice").read_bytes() == before
    assert cli("keygen", "alice", "--dir", tmp_path, "--force").code == 0
    assert (tmp_path / "alice").read_bytes() != before
    assert stat.S_IMODE((tmp_path / "alice").stat().st_mode) == 0o600


def test_keygen_bad_type_is_usage_error(tmp_path: Path, cli) -> None:
    assert cli("keygen", "x", "--dir", tmp_path, "--type", "dsa").code == 2


def test_private_key_readable_by_others_is_refused(project: Path, cli) -> None:
    os.chmod("keys/trainer", 0o644)
    r = cli("run", "s", "--key", "keys/trainer", "--", "true")
    assert r.code == 3 and "keys/trainer" in r.err and "too open" in r.err
    assert "Traceback" not in r.err


def test_malformed_and_wrong_kind_keys_give_one_line(project: Path, cli) -> None:
    Path("keys/garbage").write_bytes(b"not a key")
    os.chmod("keys/garbage", 0o600)
    for key, words in (
        ("keys/garbage", "not a PEM private key"),
        ("keys/trainer.pub", "public key"),
        ("keys/missing", "not found"),
    ):
        if key.endswith(".pub"):
            os.chmod(key, 0o600)
        r = cli("run", "s", "--key", key, "--", "true")
        assert r.code == 3, r.err
        assert words in r.err and key in r.err
        assert len(r.err.strip().splitlines()) == 1
    assert not Path(".provenance/links").exists() or not list(
        Path(".provenance/links").glob("*.link")
    )


def test_signer_uri_loads_through_securesystemslib(project: Path) -> None:
    signer = load_signer(f"file2:{project}/keys/trainer", str(project / "keys/trainer.pub"))
    assert isinstance(signer.public_key, SSlibKey)
    assert signer.public_key.keyid == load_public_key("keys/trainer.pub").keyid
