"""`provenance slsa verify` on the producers sigstore-python cannot verify offline, end to end.

GitHub private-repository attestations (timestamp only, GitHub's root) and npm provenance
(`intoto/0.0.2` entries, sha512 subjects): the genuine vectors pass and name the verified
signer; every tampered copy fails with exit 1 (or 3 for input that is not a bundle at all),
and the reason is named. The module-level rules are in test_slsa_tsa_only.py and
test_slsa_intoto002.py; these rows prove the command applies them.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from provenance.signing.sigstore._roots import named_root

VECTORS = Path(__file__).parents[1] / "vectors"
GH = VECTORS / "gh"
JAVA = VECTORS / "sigstore-java" / "github-private-no-tlog" / "attestation.sigstore.json"
WHEEL = GH / "github_provenance_demo-0.0.12-py3-none-any.whl"
PRIVATE = GH / "github_provenance_demo-0.0.12-py3-none-any-bundle.jsonl"
NPM = GH / "sigstore-js-2.1.0-bundle.json"
TGZ = GH / "sigstore-js-2.1.0.tgz"
SIGNER = "https://github.com/actions/attest-demo/.github/workflows/build-python.yml@refs/heads/main"
NPM_SIGNER = "https://github.com/sigstore/sigstore-js/.github/workflows/release.yml@refs/heads/main"


def _private() -> dict[str, Any]:
    return json.loads(PRIVATE.read_text().splitlines()[0])


def _verify(cli, artifact: Path, bundle: Path, *flags: str):  # type: ignore[no-untyped-def]
    return cli("slsa", "verify", str(artifact), "--provenance", str(bundle), "--builtin", *flags)


def test_private_repository_attestation_passes_naming_the_verified_signer(cli) -> None:
    r = _verify(cli, WHEEL, PRIVATE, "--repo", "actions/attest-demo", "--trusted-root", "github")
    assert r.code == 0, r.out + r.err
    assert r.out.startswith("PASS") and f"verified: signed by {SIGNER}" in r.out
    # The runner id is the statement's claim, shown as such.
    assert "claimed by the statement: builder https://github.com/actions/runner/github-hosted" in (
        r.out
    )
    doc = json.loads(
        _verify(
            cli,
            WHEEL,
            PRIVATE,
            "--repo",
            "actions/attest-demo",
            "--trusted-root",
            "github",
            "--json",
        ).out
    )
    verified = doc["facts"]["verified"]
    assert verified["time_source"] == "rfc3161" and verified["signed_at"].startswith("20")
    assert verified["source_repository"] == "https://github.com/actions/attest-demo"


def test_npm_provenance_passes_naming_the_verified_signer(cli) -> None:
    r = _verify(cli, TGZ, NPM, "--owner", "sigstore", "--digest-alg", "sha512")
    assert r.code == 0 and f"verified: signed by {NPM_SIGNER}" in r.out, r.out + r.err


def _flip(text: str) -> str:
    raw = bytearray(base64.b64decode(text))
    raw[len(raw) // 2] ^= 1
    return base64.b64encode(bytes(raw)).decode()


def _sig(b: dict) -> None:
    sig = b["dsseEnvelope"]["signatures"][0]
    sig["sig"] = _flip(sig["sig"])


def _payload(b: dict) -> None:
    statement = json.loads(base64.b64decode(b["dsseEnvelope"]["payload"]))
    statement["subject"][0]["digest"]["sha256"] = "0" * 64
    b["dsseEnvelope"]["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()


def _timestamp_from_another_bundle(b: dict) -> None:
    other = json.loads(JAVA.read_text())
    tvd = "timestampVerificationData"
    b["verificationMaterial"][tvd] = other["verificationMaterial"][tvd]


def _no_timestamp(b: dict) -> None:
    b["verificationMaterial"].pop("timestampVerificationData")


def _certificate_from_another_bundle(b: dict) -> None:
    other = json.loads(JAVA.read_text())["verificationMaterial"]
    mine = b["verificationMaterial"]
    for key in ("certificate", "x509CertificateChain"):
        mine.pop(key, None)
    for key in ("certificate", "x509CertificateChain"):
        if key in other:
            mine[key] = other[key]


def _root(edit: Callable[[dict], None]) -> Callable[[Path], str]:
    def write(tmp: Path) -> str:
        root = json.loads(Path(named_root("github")).read_text())
        edit(root)
        out = tmp / "root.json"
        out.write_text(json.dumps(root))
        return str(out)

    return write


def _no_tsas(root: dict) -> None:
    root["timestampAuthorities"] = []


def _no_cas(root: dict) -> None:
    root["certificateAuthorities"] = []


def _tsa_window_before(root: dict) -> None:
    for tsa in root["timestampAuthorities"]:
        tsa["validFor"] = {"start": "2020-01-01T00:00:00Z", "end": "2020-02-01T00:00:00Z"}


BUNDLE_TAMPERS = {
    "signature": (_sig, "signature"),
    "payload": (_payload, "signature"),
    "timestamp-from-another-bundle": (_timestamp_from_another_bundle, "timestamp"),
    "no-timestamp": (_no_timestamp, "timestamp"),
    "certificate-swapped": (_certificate_from_another_bundle, ""),
}


@pytest.mark.parametrize("name", sorted(BUNDLE_TAMPERS))
def test_tampered_private_bundle_fails(cli, tmp_path: Path, name: str) -> None:
    edit, words = BUNDLE_TAMPERS[name]
    bundle = _private()
    edit(bundle)
    path = tmp_path / "bundle.jsonl"
    path.write_text(json.dumps(bundle))
    r = _verify(cli, WHEEL, path, "--repo", "actions/attest-demo", "--trusted-root", "github")
    assert r.code == 1, r.out + r.err
    assert r.out.startswith("FAIL") and words in r.out, r.out
    assert "Traceback" not in r.err


ROOT_TAMPERS = {
    "root-without-tsas": (_root(_no_tsas), "timestamp"),
    "root-without-cas": (_root(_no_cas), "certificate"),
    "tsa-window-excludes-the-time": (_root(_tsa_window_before), "timestamp"),
}


@pytest.mark.parametrize("name", sorted(ROOT_TAMPERS))
def test_private_bundle_under_an_edited_root_fails(cli, tmp_path: Path, name: str) -> None:
    write, words = ROOT_TAMPERS[name]
    r = _verify(
        cli, WHEEL, PRIVATE, "--repo", "actions/attest-demo", "--trusted-root", write(tmp_path)
    )
    assert r.code in (1, 3), r.out + r.err
    assert words in (r.out + r.err).lower() and "PASS" not in r.out


@pytest.mark.parametrize(
    ("flags", "words"),
    [
        (("--repo", "actions/other"), "source repository"),
        (("--owner", "malancas"), "source repository owner"),
        (
            (
                "--repo",
                "actions/attest-demo",
                "--signer-workflow",
                "actions/attest-demo/.github/workflows/other.yml",
            ),
            "signer workflow",
        ),
        (("--repo", "actions/attest-demo", "--source-ref", "refs/heads/dev"), "source ref"),
        (("--repo", "actions/attest-demo", "--source-digest", "f" * 40), "source digest"),
        (
            (
                "--repo",
                "actions/attest-demo",
                "--builder-id",
                "https://github.com/actions/runner/github-hosted",
            ),
            "builder id",
        ),
    ],
)
def test_private_bundle_with_other_expectations_fails(
    cli, flags: tuple[str, ...], words: str
) -> None:
    r = _verify(cli, WHEEL, PRIVATE, "--trusted-root", "github", *flags)
    assert r.code == 1 and words in r.out, r.out + r.err


def test_private_bundle_for_another_artifact_fails(cli) -> None:
    r = _verify(cli, TGZ, PRIVATE, "--repo", "actions/attest-demo", "--trusted-root", "github")
    assert r.code == 1 and "no subject has the artifact's sha256" in r.out


def test_npm_bundle_for_another_artifact_fails(cli) -> None:
    r = _verify(cli, WHEEL, NPM, "--owner", "sigstore", "--digest-alg", "sha512")
    assert r.code == 1 and "no subject has the artifact's sha512" in r.out


def test_npm_bundle_with_a_flipped_signature_fails(cli, tmp_path: Path) -> None:
    bundle = json.loads(NPM.read_text())
    _sig(bundle)
    path = tmp_path / "npm.json"
    path.write_text(json.dumps(bundle))
    r = _verify(cli, TGZ, path, "--owner", "sigstore", "--digest-alg", "sha512")
    assert r.code == 1 and r.out.startswith("FAIL"), r.out + r.err
