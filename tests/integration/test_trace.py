"""`provenance trace PATH_OR_SHA256`: which step produced a file, from what, back to raw inputs."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest

from provenance.datasets import Dataset
from provenance.gate import Decision
from provenance.gate._decision import decision_tag, sign_record
from provenance.signing import load_signer
from tests.conftest import snapshot

LAYOUT = ("--layout", "root.layout", "--layout-key", "keys/owner.pub")


def sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def test_unverified_lineage_of_the_model(signed: Path, cli) -> None:
    before = snapshot(signed)
    r = cli("trace", "models/model.safetensors")
    assert r.code == 0, r.err
    first = r.out.splitlines()[0]
    assert (
        first == "models/model.safetensors  (UNVERIFIED: no layout given, signatures not checked)"
    )
    assert "← train key " in r.out and "← prepare key " in r.out
    assert "data/raw/digits.csv.gz" in r.out and "(raw input)" in r.out
    assert "file on disk: matches the recorded digest" in r.out
    assert "raw inputs: 3" in r.out
    assert "links read (unverified, signatures not checked): 3" in r.out
    for step in ("prepare", "train", "evaluate"):
        (link,) = Path(".provenance/links").glob(f"{step}.*.link")
        assert f"  {link.name}  step {step}, key {link.name.split('.')[1]}" in r.out
    doc = json.loads(cli("trace", "models/model.safetensors", "--json").out)
    assert doc["verified"] is False
    (root,) = doc["produced_by"]
    assert root["step"] == "train" and root["sha256"] == sha256("models/model.safetensors")
    # train read one artifact of prepare's: the manifest of the dataset data/processed
    (prepared,) = [m for m in root["materials"] if m.get("step") == "prepare"]
    assert prepared["path"] == Dataset("data/processed").manifest_path
    assert {m["path"] for m in prepared["materials"]} == {
        "data/raw/digits.csv.gz",
        "steps/prepare.py",
    }
    assert {r["path"] for r in doc["raw_inputs"]} == {
        "data/raw/digits.csv.gz",
        "steps/prepare.py",
        "steps/train.py",
    }
    assert snapshot(signed) == before


def test_verified_lineage_by_digest(signed: Path, cli) -> None:
    digest = sha256("metrics/metrics.json")
    r = cli("trace", f"sha256:{digest}", *LAYOUT, "--json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["verified"] is True and doc["source"] == "verified with root.layout"
    (root,) = doc["produced_by"]
    assert root["path"] == "metrics/metrics.json" and root["step"] == "evaluate"
    steps = {m.get("step") for m in root["materials"]}
    assert steps == {"prepare", "train", None}  # None: steps/evaluate.py is a raw input
    text = cli("trace", "metrics/metrics.json", *LAYOUT).out
    assert "(verified with root.layout)" in text and "UNVERIFIED" not in text


def test_lineage_refused_when_the_chain_does_not_verify(signed: Path, cli) -> None:
    (path,) = Path(".provenance/links").glob("train.*.link")
    env = json.loads(path.read_bytes())
    link = json.loads(base64.b64decode(env["payload"]))
    link["materials"]["data/raw/forged.csv"] = {"sha256": "0" * 64}
    env["payload"] = base64.b64encode(json.dumps(link).encode()).decode()
    path.write_text(json.dumps(env))
    r = cli("trace", "models/model.safetensors", *LAYOUT)
    assert r.code == 1 and r.out == ""
    assert "does not verify" in r.err and "changed after it was signed" in r.err
    # without a layout the forged material is shown, but marked unverified
    shown = cli("trace", "models/model.safetensors")
    assert shown.code == 0 and "UNVERIFIED" in shown.out and "data/raw/forged.csv" in shown.out


def test_swapped_file_on_disk_is_flagged(signed: Path, cli) -> None:
    Path("models/model.safetensors").write_bytes(b"other weights")
    r = cli("trace", "models/model.safetensors")
    assert r.code == 0 and "file on disk: DIFFERS the recorded digest" in r.out


def test_unknown_artifact_exits_1(signed: Path, cli) -> None:
    r = cli("trace", "models/unknown.bin")
    assert r.code == 1 and "no step in .provenance/links produced 'models/unknown.bin'" in r.out
    assert cli("trace", "../etc/passwd").code == 2


def test_model_versions_holding_the_file(signed: Path, cli, tmp_path: Path) -> None:
    """With an MLflow registry: versions whose gate-signed decision lists the file's digest."""
    from mlflow import MlflowClient

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    client.create_registered_model("digits")
    assert cli("keygen", "gate", "--dir", "keys").code == 0
    assert cli("keygen", "mallory", "--dir", "keys").code == 0
    model_sha = sha256("models/model.safetensors")
    for version, key in (("1", "keys/gate"), ("2", "keys/mallory"), ("3", "keys/gate")):
        client.create_model_version("digits", str(tmp_path), run_id=None)
        files = {"model.safetensors": model_sha if version != "3" else "f" * 64}
        decision = Decision(
            "digits", version, "champion", "PASSED", "a" * 64, "b" * 64,
            "2026-01-01T00:00:00.000000Z", None, (), files,
        )  # fmt: skip
        value = sign_record(decision, load_signer(key))
        client.set_model_version_tag("digits", version, decision_tag("champion"), value)
    r = cli(
        "trace", "models/model.safetensors", "--tracking-uri", uri, "--model", "digits",
        "--gate-key", "keys/gate.pub", "--json",
    )  # fmt: skip
    assert r.code == 0, r.err
    versions = json.loads(r.out)["model_versions"]
    # version 2's record is forged (not the gate's key), version 3 holds other weights
    assert [v["version"] for v in versions] == ["1"]
    assert versions[0]["alias"] == "champion" and versions[0]["files"] == ["model.safetensors"]


@pytest.mark.parametrize("args", [("--tracking-uri", "sqlite:///x.db"), ("--layout", "x")])
def test_incomplete_options_are_usage_errors(signed: Path, cli, args: tuple[str, ...]) -> None:
    r = cli("trace", "models/model.safetensors", *args)
    assert r.code == 2
