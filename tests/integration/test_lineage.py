"""Fine-tuning lineage: a base model signed with the real `model_signing` CLI is verified when the
step is recorded, named in the link, in the SLSA provenance and in the ML-BOM; a tampered, extra,
wrongly keyed or unsigned base model refuses the step before its command runs."""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from pathlib import Path

import pytest

from provenance.cli import main
from tests.conftest import BIN, snapshot

MODEL_SIGNING = str(BIN / "model_signing")
LAYOUT = """\
expires: 30d
functionaries:
  trainer: ../keys/trainer.pub
steps:
  - name: finetune
    functionaries: [trainer]
    materials:
      - allow: "base/**"
      - allow: "data/*"
    products:
      - create: "models/*"
model:
  step: finetune
  products: "models/*"
"""
# The step's command: leaves a marker (so a refused step can be shown not to have run) and
# writes fine-tuned weights derived from the base model.
SCRIPT = (
    "import pathlib; pathlib.Path('ran.marker').write_text('ran'); "
    "pathlib.Path('models').mkdir(exist_ok=True); "
    "pathlib.Path('models/weights.bin').write_bytes("
    "pathlib.Path('base/model.safetensors').read_bytes() + pathlib.Path('data/train.jsonl')"
    ".read_bytes())"
)
RUN = ("run", "finetune", "-m", "data", "-p", "models", "--key", "keys/trainer")
COMMAND = ("--", str(BIN / "python"), "-c", SCRIPT)
BASE_MODEL = ("--base-model", "base", "base/model.sig", "keys/vendor.pub")


def sha256(path: str | Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def model_signing_sign(key: str = "keys/vendor", signature: str = "base/model.sig") -> None:
    proc = subprocess.run(
        [MODEL_SIGNING, "sign", "key", "base", "--private_key", key, "--signature", signature],
        capture_output=True,
        text=True,
        timeout=120,
    )
    # model_signing 1.1.1 can print "Signing failed" and exit 0: check both.
    assert proc.returncode == 0 and "Signing succeeded" in proc.stdout, proc.stderr


def make_project(root: Path) -> None:
    """A base model from a vendor (signed by them), a dataset and the trainer's key."""
    (root / "base" / "tokenizer").mkdir(parents=True)
    (root / "base" / "model.safetensors").write_bytes(b"\x08\0\0\0\0\0\0\0{}      base")
    (root / "base" / "config.json").write_text('{"layers": 2}')
    (root / "base" / "tokenizer" / "vocab.txt").write_text("a\nb\n")
    (root / "data").mkdir()
    (root / "data" / "train.jsonl").write_text('{"text": "hello"}\n')
    (root / "layouts").mkdir()
    (root / "layouts" / "finetune.yaml").write_text(LAYOUT)
    assert main(["keygen", "vendor", "--type", "ecdsa", "--dir", "keys"]) == 0
    for name in ("trainer", "owner"):
        assert main(["keygen", name, "--dir", "keys"]) == 0
    model_signing_sign()


def link_payload(root: Path, step: str = "finetune") -> dict:
    (link,) = (root / ".provenance" / "links").glob(f"{step}.*.link")
    return json.loads(base64.b64decode(json.loads(link.read_bytes())["payload"]))


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The fine-tuning step recorded once, its layout signed, SLSA provenance and BOM written."""
    root = tmp_path_factory.mktemp("lineage")
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.setenv("CI", "true")
        make_project(root)
        assert main([*RUN, *BASE_MODEL, *COMMAND]) == 0
        sign = [
            "layout",
            "sign",
            "layouts/finetune.yaml",
            "--key",
            "keys/owner",
            "-o",
            "root.layout",
        ]
        assert main(sign) == 0
        verified = ["--layout", "root.layout", "--layout-key", "keys/owner.pub"]
        assert main(["slsa", "attest", "--subject", "models/**", *verified,
                     "--key", "keys/trainer", "-o", "model.intoto.jsonl"]) == 0  # fmt: skip
        assert main(["bom", *verified, "-o", "bom.cdx.json"]) == 0
    return root


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    make_project(tmp_path)
    return tmp_path


def test_link_records_the_verified_base_model(chain: Path) -> None:
    assert (chain / "ran.marker").exists()
    env = link_payload(chain)["environment"]
    (record,) = env["base_models"]
    from importlib.metadata import version

    assert record == {
        "path": "base",
        "signature": "base/model.sig",
        "signature_sha256": sha256(chain / "base" / "model.sig"),
        "public_key_sha256": sha256(chain / "keys" / "vendor.pub"),
        "manifest_sha256": record["manifest_sha256"],
        "files": 3,
        "format": "oms",
        "model_signing": version("model-signing"),
    }
    # The manifest digest is the subject of the vendor's signed OMS statement.
    bundle = json.loads((chain / "base" / "model.sig").read_text())
    statement = json.loads(base64.b64decode(bundle["dsseEnvelope"]["payload"]))
    assert record["manifest_sha256"] == statement["subject"][0]["digest"]["sha256"]
    # Its directory became a material, recorded file by file with the digests the vendor signed.
    materials = link_payload(chain)["materials"]
    signed = {r["name"]: r["digest"] for r in statement["predicate"]["resources"]}
    assert signed == {
        name: sha256(chain / "base" / name)
        for name in ("config.json", "model.safetensors", "tokenizer/vocab.txt")
    }
    for name, digest in signed.items():
        assert materials[f"base/{name}"] == {"sha256": digest}
    assert env["patterns"]["materials"] == ["data", "base"]


def test_slsa_provenance_lists_the_base_model_as_resolved_dependency(chain: Path) -> None:
    envelope = json.loads((chain / "model.intoto.jsonl").read_text().splitlines()[0])
    statement = json.loads(base64.b64decode(envelope["payload"]))
    deps = statement["predicate"]["buildDefinition"]["resolvedDependencies"]
    record = link_payload(chain)["environment"]["base_models"][0]
    (base,) = [d for d in deps if d["name"] == "base/"]
    assert base["digest"] == {"sha256": record["manifest_sha256"]}
    notes = base["annotations"]
    assert notes["kind"] == "base-model" and "OpenSSF Model Signing" in notes["format"]
    assert notes["oms.signature.sha256"] == sha256(chain / "base" / "model.sig")
    assert notes["oms.publicKey.sha256"] == sha256(chain / "keys" / "vendor.pub")
    assert notes["oms.files"] == 3
    # The weights themselves are inputs too, by file digest.
    names = {d["name"]: d["digest"] for d in deps}
    assert names["base/model.safetensors"] == {"sha256": sha256(chain / "base/model.safetensors")}


def test_bom_names_the_base_model_as_pedigree_ancestor(chain: Path) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    bom = json.loads((chain / "bom.cdx.json").read_text())
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(bom))
    assert error is None, str(error)[:2000]
    model = bom["metadata"]["component"]
    (ancestor,) = model["pedigree"]["ancestors"]
    record = link_payload(chain)["environment"]["base_models"][0]
    assert ancestor["type"] == "machine-learning-model" and ancestor["name"] == "base"
    assert ancestor["hashes"] == [{"alg": "SHA-256", "content": record["manifest_sha256"]}]
    files = {c["name"]: c["hashes"][0]["content"] for c in ancestor["components"]}
    assert files == {
        name: sha256(chain / "base" / name)
        for name in ("config.json", "model.safetensors", "model.sig", "tokenizer/vocab.txt")
    }
    props = {p["name"]: p["value"] for p in ancestor["properties"]}
    assert props["ml-provenance:oms-public-key-sha256"] == sha256(chain / "keys" / "vendor.pub")
    assert props["ml-provenance:consumed-by"] == "finetune"
    # The model depends on it; its weights are not counted among the training datasets.
    (deps,) = bom["dependencies"]
    assert ancestor["bom-ref"] in deps["dependsOn"]
    by_ref = {c["bom-ref"]: c for c in bom["components"]}
    datasets = model["modelCard"]["modelParameters"]["datasets"]
    assert {by_ref[d["ref"]]["name"] for d in datasets} == {"data/train.jsonl"}
    assert not any(c["name"].startswith("base/") for c in bom["components"])


def _refused(project: Path, cli, *extra: str) -> tuple[int, str]:
    before = snapshot(project)
    r = cli(*RUN, *extra, *COMMAND)
    assert not (project / "ran.marker").exists()  # the command did not run
    assert not list(project.glob(".provenance/links/*.link"))  # no link written
    assert snapshot(project) == before  # nothing written at all (no RUN_ID either)
    return r.code, r.err


def test_tampered_base_model_file_refuses_the_step(project: Path, cli) -> None:
    (project / "base" / "config.json").write_text('{"layers": 3}')
    code, err = _refused(project, cli, *BASE_MODEL)
    assert code == 1
    assert err.startswith("error: step 'finetune' refused: base model base: OMS signature")
    assert "Hash mismatch for 'config.json'" in err


def test_extra_or_missing_base_model_file_refuses_the_step(project: Path, cli) -> None:
    (project / "base" / "planted.pkl").write_bytes(b"\x80\x04N.")
    code, err = _refused(project, cli, *BASE_MODEL)
    assert code == 1 and "Extra files found in model 'base': planted.pkl" in err
    (project / "base" / "planted.pkl").unlink()
    (project / "base" / "tokenizer" / "vocab.txt").unlink()
    code, err = _refused(project, cli, *BASE_MODEL)
    assert code == 1 and "Missing files in model 'base': tokenizer/vocab.txt" in err


def test_base_model_signed_by_another_key_refuses_the_step(project: Path, cli) -> None:
    assert cli("keygen", "impostor", "--type", "ecdsa", "--dir", "keys").code == 0
    model_signing_sign(key="keys/impostor")
    code, err = _refused(project, cli, *BASE_MODEL)
    assert code == 1 and "base: OMS signature base/model.sig does not verify" in err


def test_missing_signature_or_unusable_key_refuses_the_step_as_bad_input(
    project: Path, cli
) -> None:
    (project / "base" / "model.sig").unlink()
    code, err = _refused(project, cli, *BASE_MODEL)
    assert code == 3 and "base/model.sig: OMS signature not found" in err
    model_signing_sign()
    # The trainer's Ed25519 key cannot be an OMS key: named, with the way out.
    code, err = _refused(project, cli, "--base-model", "base", "base/model.sig", "keys/trainer.pub")
    assert code == 3 and "keys/trainer.pub" in err and "supports only ECDSA keys" in err


def test_base_model_outside_the_project_is_a_usage_error(project: Path, cli) -> None:
    code, err = _refused(project, cli, "--base-model", "..", "base/model.sig", "keys/vendor.pub")
    assert code == 2 and "must be a directory inside the project root" in err


def test_signed_file_left_out_of_the_materials_refuses_the_step(project: Path, cli) -> None:
    """`__pycache__/` is excluded from materials by default: the link could not record it."""
    (project / "base" / "__pycache__").mkdir()
    (project / "base" / "__pycache__" / "tok.cpython-311.pyc").write_bytes(b"code")
    model_signing_sign()
    code, err = _refused(project, cli, *BASE_MODEL)
    assert code == 1
    assert "base/__pycache__/tok.cpython-311.pyc, signed by the base model's OMS signature, " in err
    assert "is not among the step's materials" in err


def test_materials_must_be_the_signed_bytes() -> None:
    """The window between the signature check and the hashing of materials is closed."""
    from provenance.errors import VerificationError
    from provenance.hashing import ArtifactSet
    from provenance.record._lineage import BaseModelRecord, VerifiedBaseModel, check_materials

    record = BaseModelRecord("base", "base.sig", "a" * 64, "b" * 64, "c" * 64, 1, "1.1.1")
    verified = [VerifiedBaseModel(record, {"w.bin": "d" * 64})]
    check_materials("ft", verified, ArtifactSet({"base/w.bin": "d" * 64}))
    with pytest.raises(VerificationError, match=r"base/w\.bin changed after its OMS signature"):
        check_materials("ft", verified, ArtifactSet({"base/w.bin": "e" * 64}))


def test_decorated_step_with_tampered_base_model_does_not_run(project: Path) -> None:
    import provenance
    from provenance.errors import VerificationError

    calls: list[int] = []
    base = provenance.BaseModel(path="base", signature="base/model.sig", key="keys/vendor.pub")

    @provenance.step("finetune", materials=["data"], key="keys/trainer", base_models=[base])
    def finetune() -> None:
        calls.append(1)

    (project / "base" / "model.safetensors").write_bytes(b"poisoned")
    with pytest.raises(VerificationError, match="step 'finetune' refused: base model base"):
        finetune()
    assert calls == [] and not list(project.glob(".provenance/links/*.link"))
    model_signing_sign()  # the vendor re-signs: now it runs and records the base model
    finetune()
    assert calls == [1]
    assert link_payload(project)["environment"]["base_models"][0]["path"] == "base"


def test_step_spec_refuses_a_base_model_not_in_a_list() -> None:
    import provenance
    from provenance.errors import UsageError

    base = provenance.BaseModel(path="base", signature="base.sig", key="vendor.pub")
    with pytest.raises(UsageError, match="base_models must be a list"):
        provenance.StepSpec("ft", base_models=base)  # type: ignore[arg-type]
    with pytest.raises(UsageError, match="signature must be a non-empty path"):
        provenance.BaseModel(path="base", signature="", key="vendor.pub")


def test_malformed_base_model_record_in_a_link_is_refused() -> None:
    from provenance.errors import LinkFormatError
    from provenance.links import LinkData
    from provenance.record import base_models_of

    def link(env: dict) -> LinkData:
        return LinkData("ft", [], {}, {}, {}, env)

    assert base_models_of(link({}), "ft.link") == []
    good = {
        "path": "base",
        "signature": "base.sig",
        "signature_sha256": "a" * 64,
        "public_key_sha256": "b" * 64,
        "manifest_sha256": "c" * 64,
        "files": 2,
        "format": "oms",
        "model_signing": "1.1.1",
    }
    assert base_models_of(link({"base_models": [good]}), "ft.link")[0].manifest_sha256 == "c" * 64
    for bad in ({"manifest_sha256": "xyz"}, {"path": "../up"}, {"files": True}, {"format": "x"}):
        with pytest.raises(LinkFormatError, match=r"ft\.link: environment\.base_models"):
            base_models_of(link({"base_models": [{**good, **bad}]}), "ft.link")
