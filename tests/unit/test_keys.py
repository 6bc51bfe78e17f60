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


def test_keygen_writes_a_gitignore_that_keeps_private_keys_out_of_git(tmp_path: Path, cli) -> None:
    import subprocess

    subprocess.run(["git", "init", "-q", str(tmp_path)], check=True)
    assert cli("keygen", "alice", "--dir", tmp_path / "keys").code == 0
    assert cli("keygen", "bob", "--dir", tmp_path / "keys", "--type", "ecdsa").code == 0
    subprocess.run(["git", "-C", str(tmp_path), "add", "-A"], check=True)
    staged = subprocess.run(
        ["git", "-C", str(tmp_path), "diff", "--cached", "--name-only"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    assert sorted(staged) == ["keys/.gitignore", "keys/alice.pub", "keys/bob.pub"]


def test_keygen_leaves_an_existing_gitignore_alone(tmp_path: Path, cli) -> None:
    (tmp_path / ".gitignore").write_text("mine\n")
    r = cli("keygen", "alice", "--dir", tmp_path)
    assert r.code == 0 and ".gitignore" not in r.out
    assert (tmp_path / ".gitignore").read_text() == "mine\n"


def test_encrypted_key_signs_a_step_with_the_passphrase_from_the_environment(
    project: Path, cli, monkeypatch
) -> None:
    monkeypatch.setenv("PROVENANCE_KEY_PASSPHRASE", "correct horse")
    r = cli("keygen", "vault", "--dir", "keys", "--encrypt", "--json")
    assert r.code == 0, r.err
    assert '"encrypted": true' in r.out
    assert Path("keys/vault").read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    assert cli("run", "s", "--key", "keys/vault", "--", "true").code == 0
    keyid = load_public_key("keys/vault.pub").keyid
    assert Path(f".provenance/links/s.{keyid[:8]}.link").is_file()
    # every loader takes it: the layout signer too
    r = cli("layout", "sign", "layouts/train.yaml", "--key", "keys/vault", "-o", "root.layout")
    assert r.code == 0, r.err


def test_encrypted_key_without_or_with_a_wrong_passphrase_is_one_line_exit_3(
    project: Path, cli, monkeypatch
) -> None:
    monkeypatch.setenv("PROVENANCE_KEY_PASSPHRASE", "right")
    assert cli("keygen", "vault", "--dir", "keys", "--encrypt").code == 0
    monkeypatch.delenv("PROVENANCE_KEY_PASSPHRASE")
    r = cli("run", "s", "--key", "keys/vault", "--", "true")
    assert r.code == 3 and "keys/vault" in r.err and "PROVENANCE_KEY_PASSPHRASE" in r.err
    assert len(r.err.strip().splitlines()) == 1
    monkeypatch.setenv("PROVENANCE_KEY_PASSPHRASE", "wrong")
    r = cli("run", "s", "--key", "keys/vault", "--", "true")
    assert r.code == 3 and "wrong passphrase" in r.err and "keys/vault" in r.err
    assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err
    assert not Path(".provenance/links").exists() or not list(
        Path(".provenance/links").glob("*.link")
    )


def test_keygen_encrypt_without_a_passphrase_source_is_a_usage_error(tmp_path: Path, cli) -> None:
    r = cli("keygen", "vault", "--dir", tmp_path, "--encrypt")
    assert r.code == 2 and "PROVENANCE_KEY_PASSPHRASE" in r.err
    assert not (tmp_path / "vault").exists()


def test_public_key_given_as_private_key_says_so_whatever_its_mode(project: Path, cli) -> None:
    for mode in (0o644, 0o600):
        os.chmod("keys/trainer.pub", mode)
        r = cli("run", "s", "--key", "keys/trainer.pub", "--", "true")
        assert r.code == 3
        assert "keys/trainer.pub: is a public key; a private key is needed here" in r.err
        assert "too open" not in r.err


def test_ecdsa_keys_are_p256_pem_as_model_signing_key_mode_loads_them(
    tmp_path: Path, cli, monkeypatch
) -> None:
    """model-signing's `sign key` loads PEM private keys with cryptography and needs EC keys."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import (
        load_pem_private_key,
        load_pem_public_key,
    )

    monkeypatch.setenv("PROVENANCE_KEY_PASSPHRASE", "pw")
    assert cli("keygen", "plain", "--dir", tmp_path, "--type", "ecdsa").code == 0
    assert cli("keygen", "enc", "--dir", tmp_path, "--type", "ecdsa", "--encrypt").code == 0
    for name, password in (("plain", None), ("enc", b"pw")):
        private = load_pem_private_key((tmp_path / name).read_bytes(), password=password)
        public = load_pem_public_key((tmp_path / f"{name}.pub").read_bytes())
        assert isinstance(private, ec.EllipticCurvePrivateKey)
        assert isinstance(private.curve, ec.SECP256R1)
        assert isinstance(public, ec.EllipticCurvePublicKey)
        assert (tmp_path / f"{name}.pub").read_bytes().startswith(b"-----BEGIN PUBLIC KEY-----")


def _echo_off(fd: int) -> bool:
    """Wait (up to 5 s) until the program has switched the terminal's echo off."""
    import termios
    import time

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if not termios.tcgetattr(fd)[3] & termios.ECHO:
            return True
        time.sleep(0.05)
    return False


def _in_terminal(argv: list[str], cwd: Path, answers: list[bytes]) -> tuple[int, bytes]:
    """Run argv with a pseudo-terminal as its controlling terminal; answer each prompt."""
    import pty
    import select
    import time

    env = {k: v for k, v in os.environ.items() if k != "PROVENANCE_KEY_PASSPHRASE"}
    pid, fd = pty.fork()
    if pid == 0:  # child
        os.chdir(cwd)
        os.execve(argv[0], argv, env)
    output = b""
    deadline = time.monotonic() + 60
    pending = list(answers)
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 0.5)
            if ready:
                try:
                    chunk = os.read(fd, 4096)
                except OSError:
                    break
                if not chunk:
                    break
                output += chunk
                if pending and output.rstrip().endswith(b":") and _echo_off(fd):
                    os.write(fd, pending.pop(0) + b"\n")
                    output += b"\n"  # the next prompt must end the output again
    finally:
        os.close(fd)
    _, status = os.waitpid(pid, 0)
    return os.waitstatus_to_exitcode(status), output


def test_passphrase_is_asked_in_a_terminal_for_keygen_and_for_signing(project: Path) -> None:
    from tests.conftest import BIN

    exe = str(BIN / "provenance")
    code, out = _in_terminal(
        [exe, "keygen", "tty", "--dir", "keys", "--encrypt"], project, [b"s3cret", b"s3cret"]
    )
    assert code == 0, out
    assert b"s3cret" not in out  # never echoed
    assert Path("keys/tty").read_bytes().startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
    code, out = _in_terminal(
        [exe, "run", "s", "--key", "keys/tty", "--", "true"], project, [b"s3cret"]
    )
    assert code == 0, out
    assert b"passphrase for keys/tty:" in out and b"s3cret" not in out
    code, out = _in_terminal(
        [exe, "run", "s", "--key", "keys/tty", "--", "true"], project, [b"wrong"]
    )
    assert code == 3 and b"wrong passphrase" in out


_WITHOUT_THEN_WITH_BOTO3 = """
import sys
from provenance.cli import main

assert main(["run", "s", "-q", "--key", "keys/trainer", "-m", "data", "--", "true"]) == 0
print("after a PEM-key step:", "boto3" in sys.modules)
from provenance.signing import load_signer

signer = load_signer("awskms:alias/release", "keys/ecdsa.pub")
print("after an awskms URI:", type(signer).__name__, "boto3" in sys.modules)
try:
    signer.sign(b"payload")
except Exception as exc:
    print("signing:", type(exc).__module__.split(".")[0], type(exc).__name__)
"""


def test_pem_key_step_does_not_import_boto3_and_an_aws_kms_uri_later_still_works(
    project: Path,
) -> None:
    """securesystemslib's AWS signer is left without boto3 on the PEM path, re-imported on use."""
    import subprocess
    import sys

    from provenance.signing import generate

    generate("ecdsa", "keys", "ecdsa")
    env = {
        **os.environ,
        "PROVENANCE_RUN_ID": "boto3",
        "AWS_DEFAULT_REGION": "eu-west-1",
        "AWS_ACCESS_KEY_ID": "test",
        "AWS_SECRET_ACCESS_KEY": "test",
        "AWS_ENDPOINT_URL_KMS": "http://127.0.0.1:9",  # discard port: refused at once
        "AWS_MAX_ATTEMPTS": "1",
        "AWS_RETRY_MODE": "standard",
    }
    r = subprocess.run(
        [sys.executable, "-c", _WITHOUT_THEN_WITH_BOTO3],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[1:] == [
        "after a PEM-key step: False",
        "after an awskms URI: AWSSigner True",
        "signing: botocore EndpointConnectionError",  # boto3's KMS client made the call
    ], r.stderr
    assert list(Path(".provenance/links").glob("s.*.link"))


def _spelled(key, keyid: str, **changes) -> object:
    from securesystemslib.signer import SSlibKey

    data = {"keytype": key.keytype, "scheme": key.scheme, "keyval": dict(key.keyval)}
    data.update(changes)
    return SSlibKey.from_dict(keyid, data)


def test_key_material_is_one_for_every_spelling_securesystemslib_accepts() -> None:
    """Each spelling verifies the same signatures (securesystemslib reads it so), and each has a
    key id of its own: a threshold must count the key, not the id."""
    from securesystemslib.signer import CryptoSigner, Signature

    from provenance.signing import key_material

    ed, ec = CryptoSigner.generate_ed25519(), CryptoSigner.generate_ecdsa()
    hexed = ed.public_key.keyval["public"]
    pem = ec.public_key.keyval["public"]
    spellings = [
        (ed, _spelled(ed.public_key, "a" * 64, keyval={"public": hexed.upper()})),
        (ed, _spelled(ed.public_key, "b" * 64, keyval={"public": " ".join(hexed[i : i + 2] for i in range(0, 64, 2))})),
        (ec, _spelled(ec.public_key, "c" * 64, keyval={"public": "a comment line\n" + pem})),
        (ec, _spelled(ec.public_key, "d" * 64, keyval={"public": pem.replace("\n", "\r\n")})),
        (ec, _spelled(ec.public_key, "e" * 64, keytype="ecdsa-sha2-nistp256")),
    ]  # fmt: skip
    for signer, twin in spellings:
        signature = signer.sign(b"payload")
        twin.verify_signature(Signature(twin.keyid, signature.signature), b"payload")
        assert key_material(twin) == key_material(signer.public_key)
    assert key_material(ed.public_key) != key_material(CryptoSigner.generate_ed25519().public_key)
    assert key_material(ec.public_key) != key_material(ed.public_key)
