"""OpenSSF Model Signing: our `oms sign/verify` and the real `model_signing` CLI accept each
other's signatures, and both refuse a tampered, missing or extra file."""

from __future__ import annotations

import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from tests.conftest import BIN

MODEL_SIGNING = str(BIN / "model_signing")


def _theirs(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([MODEL_SIGNING, *args], capture_output=True, text=True, timeout=120)


def _snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def model(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli) -> Path:
    monkeypatch.chdir(tmp_path)
    root = tmp_path / "model"
    (root / "tokenizer").mkdir(parents=True)
    (root / "model.safetensors").write_bytes(b"\x08\0\0\0\0\0\0\0{}      ")
    (root / "config.json").write_text('{"layers": 2}')
    (root / "tokenizer" / "vocab.txt").write_text("a\nb\n")
    assert cli("keygen", "modelsigner", "--type", "ecdsa", "--dir", "keys").code == 0
    assert cli("keygen", "edsigner", "--dir", "keys").code == 0
    return root


def test_our_signature_is_accepted_by_model_signing(model: Path, cli) -> None:
    r = cli("oms", "sign", "model", "--key", "keys/modelsigner", "-o", "model.sig")
    assert r.code == 0, r.err
    bundle = json.loads(Path("model.sig").read_text())
    assert bundle["mediaType"].startswith("application/vnd.dev.sigstore.bundle")
    theirs = _theirs(
        "verify", "key", "model", "--signature", "model.sig", "--public_key", "keys/modelsigner.pub"
    )
    assert theirs.returncode == 0, theirs.stderr
    assert "Verification succeeded" in theirs.stdout
    assert cli("oms", "verify", "model", "--signature", "model.sig",
               "--key", "keys/modelsigner.pub").code == 0  # fmt: skip


def test_model_signing_signature_is_accepted_by_us(model: Path, cli) -> None:
    theirs = _theirs(
        "sign", "key", "model", "--private_key", "keys/modelsigner", "--signature", "theirs.sig"
    )
    assert theirs.returncode == 0 and "Signing succeeded" in theirs.stdout, theirs.stderr
    r = cli("oms", "verify", "model", "--signature", "theirs.sig", "--key", "keys/modelsigner.pub",
            "--json")  # fmt: skip
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["ok"] is True and doc["signature"] == "theirs.sig"
    assert doc["files"] == {
        "config.json": hashlib.sha256(b'{"layers": 2}').hexdigest(),
        "model.safetensors": hashlib.sha256((model / "model.safetensors").read_bytes()).hexdigest(),
        "tokenizer/vocab.txt": hashlib.sha256(b"a\nb\n").hexdigest(),
    }
    assert doc["signature_sha256"] == hashlib.sha256(Path("theirs.sig").read_bytes()).hexdigest()
    assert len(doc["manifest_sha256"]) == 64


def test_verified_base_model_is_a_lineage_record(model: Path, cli) -> None:
    """For fine-tuning: what was verified becomes a SLSA resolved dependency (by manifest)."""
    from provenance.attest.oms import verify

    assert cli("oms", "sign", "model", "--key", "keys/modelsigner", "-o", "base.sig").code == 0
    base = verify("model", "base.sig", "keys/modelsigner.pub")
    dep = base.as_resolved_dependency()
    assert dep["name"] == "model"
    assert dep["digest"] == {"sha256": base.manifest_sha256}
    assert (
        dep["annotations"]["oms.publicKey.sha256"]
        == hashlib.sha256(Path("keys/modelsigner.pub").read_bytes()).hexdigest()
    )
    (model / "config.json").write_text("{}")
    assert cli("oms", "sign", "model", "--key", "keys/modelsigner", "-o", "base2.sig").code == 0
    assert verify("model", "base2.sig", "keys/modelsigner.pub").manifest_sha256 != (
        base.manifest_sha256
    )


@pytest.mark.parametrize(
    ("attack", "message"),
    [
        ("tampered", "Hash mismatch for 'config.json'"),
        ("missing", "Missing files in model 'model': tokenizer/vocab.txt"),
        ("extra", "Extra files found in model 'model': planted.pkl"),
    ],
)
@pytest.mark.parametrize("signer", ["ours", "theirs"])
def test_tampered_missing_or_extra_file_is_refused_by_both(
    model: Path, cli, attack: str, message: str, signer: str
) -> None:
    if signer == "ours":
        assert cli("oms", "sign", "model", "--key", "keys/modelsigner", "-o", "model.sig").code == 0
    else:
        assert _theirs("sign", "key", "model", "--private_key", "keys/modelsigner",
                       "--signature", "model.sig").returncode == 0  # fmt: skip
    if attack == "tampered":
        (model / "config.json").write_text('{"layers": 3}')
    elif attack == "missing":
        (model / "tokenizer" / "vocab.txt").unlink()
    else:
        (model / "planted.pkl").write_bytes(b"\x80\x04N.")
    before = _snapshot(model)
    r = cli("oms", "verify", "model", "--signature", "model.sig", "--key", "keys/modelsigner.pub")
    assert r.code == 1
    assert r.err.startswith("error: model: OMS signature model.sig does not verify")
    assert message in r.err
    theirs = _theirs(
        "verify", "key", "model", "--signature", "model.sig", "--public_key", "keys/modelsigner.pub"
    )
    # model_signing 1.1.1 exits 1 here; assert on its output as well (older releases exited 0).
    assert theirs.returncode == 1
    assert "Verification failed" in theirs.stderr and message in theirs.stderr
    assert _snapshot(model) == before  # verification changed nothing


def test_signature_by_another_key_is_refused(model: Path, cli) -> None:
    assert cli("keygen", "other", "--type", "ecdsa", "--dir", "keys").code == 0
    assert cli("oms", "sign", "model", "--key", "keys/other", "-o", "model.sig").code == 0
    r = cli("oms", "verify", "model", "--signature", "model.sig", "--key", "keys/modelsigner.pub")
    assert r.code == 1 and "does not verify" in r.err


def test_ed25519_keys_are_refused_with_the_way_out(model: Path, cli) -> None:
    r = cli("oms", "sign", "model", "--key", "keys/edsigner", "-o", "model.sig")
    assert r.code == 3
    assert "keys/edsigner: Ed25519 key: model-signing key mode supports only ECDSA keys" in r.err
    assert "provenance keygen NAME --type ecdsa" in r.err
    assert not Path("model.sig").exists()
    assert cli("oms", "sign", "model", "--key", "keys/modelsigner", "-o", "model.sig").code == 0
    r = cli("oms", "verify", "model", "--signature", "model.sig", "--key", "keys/edsigner.pub")
    assert r.code == 3 and "supports only ECDSA keys" in r.err
    # model_signing itself fails on the same key: documented, exit 1 in 1.1.1.
    theirs = _theirs(
        "sign", "key", "model", "--private_key", "keys/edsigner", "--signature", "x.sig"
    )
    assert theirs.returncode == 1 and "Signing failed" in theirs.stderr


def test_bad_inputs_are_exit_3_with_the_file_named(model: Path, cli) -> None:
    Path("junk.sig").write_text("not json")
    r = cli("oms", "verify", "model", "--signature", "junk.sig", "--key", "keys/modelsigner.pub")
    assert r.code == 3 and "junk.sig: OMS signature is not JSON" in r.err
    r = cli("oms", "verify", "nowhere", "--signature", "junk.sig", "--key", "keys/modelsigner.pub")
    assert r.code == 3 and "nowhere: model directory not found" in r.err
    r = cli("oms", "verify", "model", "--signature", "missing.sig", "--key", "keys/modelsigner.pub")
    assert r.code == 3 and "missing.sig: OMS signature not found" in r.err
    r = cli("oms", "sign", "model", "--key", "keys/modelsigner.pub", "-o", "model.sig")
    assert r.code == 3 and "keys/modelsigner.pub" in r.err
