"""`provenance inspect FILE`: what a file is (by content), who signed it, and whether that holds."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest

from provenance.datasets import Dataset
from provenance.gate import Decision
from provenance.gate._decision import sign_record
from provenance.signing import load_signer
from tests.conftest import snapshot

REPO = Path(__file__).resolve().parents[2]
GH = REPO / "tests" / "vectors" / "gh"
VSA = REPO / "tests" / "vectors-attest"


def link(step: str) -> Path:
    (path,) = Path(".provenance/links").glob(f"{step}.*.link")
    return path


def test_link_layout_and_provenance_of_a_real_run(signed: Path, cli) -> None:
    before = snapshot(signed)
    unchecked = cli("inspect", link("train"))
    assert unchecked.code == 0, unchecked.err
    out = unchecked.out
    assert f"{link('train')}: in-toto link" in out
    assert "signature: NOT CHECKED" in out and "unverified: the contents below" in out
    assert "step: train" in out and "steps/train.py:train" in out
    assert f"materials: 2 ({Dataset('data/processed').manifest_path}, steps/train.py)" in out
    assert "products: 2 (models/config.json, models/model.safetensors)" in out
    assert "pipeline_run_id=" in out and "python=" in out
    assert re.search(r"when: 20\d\d-\d\d-\d\dT[\d:]+Z -> 20\d\d-", out), out

    valid = cli("inspect", link("train"), "--key", "keys/trainer.pub", "--json")
    assert valid.code == 0
    (doc,) = json.loads(valid.out)["documents"]
    assert doc["signature"] == "VALID" and doc["unverified"] is False
    assert doc["fields"]["step"] == "train" and doc["fields"]["products"]["count"] == 2
    assert "unverified" not in cli("inspect", link("train"), "--key", "keys/trainer.pub").out

    wrong = cli("inspect", link("train"), "--key", "keys/evaluator.pub")
    assert wrong.code == 1
    assert "signature: INVALID (by none of the keys given)" in wrong.out
    assert "unverified: the contents below" in wrong.out

    layout = cli("inspect", "root.layout", "--key", "keys/owner.pub")
    assert layout.code == 0
    assert "root.layout: in-toto layout (signed)" in layout.out
    assert "signature: VALID" in layout.out and "steps: prepare, train, evaluate" in layout.out

    attest = cli(
        "slsa", "attest", "--subject", "models/**", "--layout", "root.layout",
        "--layout-key", "keys/owner.pub", "--key", "keys/trainer", "-o", "model.intoto.jsonl",
    )  # fmt: skip
    assert attest.code == 0, attest.err
    prov = cli("inspect", "model.intoto.jsonl", "--key", "keys/trainer.pub")
    assert prov.code == 0
    assert "in-toto attestation: SLSA provenance v1" in prov.out
    assert "signature: VALID" in prov.out and "subject count: 2" in prov.out
    assert "name=models/model.safetensors, sha256=" in prov.out
    assert set(snapshot(signed)) - set(before) == {"model.intoto.jsonl"}  # nothing else


def test_edited_link_is_invalid_and_labelled_unverified(signed: Path, cli) -> None:
    path = link("train")
    env = json.loads(path.read_bytes())
    payload = json.loads(base64.b64decode(env["payload"]))
    payload["products"]["models/backdoor.bin"] = {"sha256": "0" * 64}
    env["payload"] = base64.b64encode(json.dumps(payload).encode()).decode()
    path.write_text(json.dumps(env))
    r = cli("inspect", path, "--key", "keys/trainer.pub", "--json")
    assert r.code == 1
    (doc,) = json.loads(r.out)["documents"]
    assert doc["signature"] == "INVALID" and doc["unverified"] is True
    assert doc["verified_by"] == []


def test_gate_decision_record(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli("keygen", "gate", "--dir", "keys").code == 0
    decision = Decision(
        "digits", "3", "champion", "PASSED", "a" * 64, "b" * 64, "2026-01-01T00:00:00.000000Z",
        "run-1", (), {"model.safetensors": "c" * 64},
    )  # fmt: skip
    Path("tag.json").write_text(sign_record(decision, load_signer("keys/gate")))
    r = cli("inspect", "tag.json", "--key", "keys/gate.pub")
    assert r.code == 0, r.err
    assert "tag.json: gate decision record" in r.out and "signature: VALID" in r.out
    for field in ("model: digits", "version: 3", "alias: champion", "result: PASSED"):
        assert field in r.out
    assert "files: 1 (model.safetensors)" in r.out
    assert cli("inspect", "tag.json").out.count("unverified") == 1


def test_sigstore_bundle_shows_the_certificate_identity(cli) -> None:
    r = cli("inspect", GH / "reusable-workflow-attestation.sigstore.json")
    assert r.code == 0, r.err
    assert "Sigstore bundle: in-toto attestation: SLSA provenance v1" in r.out
    assert (
        "certificate identity: https://github.com/github/artifact-attestations-workflows/"
        ".github/workflows/attest.yml@" in r.out
    )
    assert "certificate issuer: https://token.actions.githubusercontent.com" in r.out
    assert "certificate source: https://github.com/malancas/attest-demo" in r.out
    assert "signature: VALID (against the pinned Sigstore root" in r.out


def test_bundle_sigstore_python_cannot_check_says_so(cli) -> None:
    r = cli("inspect", GH / "github_provenance_demo-0.0.12-py3-none-any-bundle.jsonl", "--json")
    assert r.code == 0
    (doc,) = json.loads(r.out)["documents"]
    assert doc["signature"] == "NOT CHECKED" and doc["unverified"] is True
    assert doc["note"].startswith("certificate chain not checked")
    assert doc["identity"]["identity"].startswith("https://github.com/actions/attest-demo/")


def test_vsa_with_a_foreign_key_id(cli) -> None:
    r = cli("inspect", VSA / "gke-gce-pre.bcid-vsa.jsonl", "--key", VSA / "google-vsa-signing.pub")
    assert r.code == 0, r.out
    assert "SLSA verification summary (VSA)" in r.out and "signature: VALID" in r.out
    assert "verificationResult: PASSED" in r.out and "SLSA_BUILD_LEVEL_2" in r.out


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"{}", "not a link, layout, attestation, Sigstore bundle or gate record"),
        (b"not json at all", "is not JSON"),
        (b'{"payload": "!!", "payloadType": "x", "signatures": []}', "not valid base64"),
        (b"[1, 2]", "not a JSON object"),
    ],
)
def test_unknown_or_malformed_file_exits_3(
    tmp_path: Path, cli, content: bytes, message: str
) -> None:
    path = tmp_path / "thing.json"
    path.write_bytes(content)
    r = cli("inspect", path)
    assert r.code == 3, (r.out, r.err)
    assert r.out == "" and str(path) in r.err and message in r.err
    assert "Traceback" not in r.err and len(r.err.strip().splitlines()) == 1


def test_missing_file_exits_3(tmp_path: Path, cli) -> None:
    r = cli("inspect", tmp_path / "nope.link")
    assert r.code == 3 and "not found" in r.err


def test_bundle_with_a_log_entry_not_checkable_offline_is_not_checked(cli) -> None:
    r = cli("inspect", GH / "sigstore-js-2.1.0_with_2_bundles.jsonl", "--json")
    assert r.code == 0, r.err
    docs = json.loads(r.out)["documents"]
    assert len(docs) == 2 and all(d["signature"] == "NOT CHECKED" for d in docs)
    assert "intoto/0.0.2 cannot be verified offline" in docs[0]["note"]
    assert docs[1]["source"].endswith("(line 2)")


def test_bundle_not_from_the_pinned_root_is_invalid(cli) -> None:
    staging = (
        REPO / "tests" / "vectors" / "sigstore-python" / "a.dsse.staging-rekor-v2.txt.sigstore.json"
    )
    r = cli("inspect", staging)
    assert r.code == 1
    assert "signature: INVALID (see note)" in r.out
    assert "note: against the pinned Sigstore root:" in r.out and "unverified" in r.out
