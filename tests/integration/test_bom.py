"""`provenance bom`: a CycloneDX 1.6 ML-BOM built only from a verified chain, schema-validated
with cyclonedx-python-lib; a chain that does not verify gets none."""

from __future__ import annotations

import base64
import hashlib
import json
import shutil
from importlib import resources
from pathlib import Path

import pytest

from provenance.cli import main
from provenance.datasets import Dataset
from tests.conftest import FUNCTIONARIES, REPO, run_pipeline, snapshot

ARGS = ("bom", "--layout", "root.layout", "--layout-key", "keys/owner.pub")


def sha256(path: str) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def link_payload(step: str) -> dict:
    (link,) = Path(".provenance/links").glob(f"{step}.*.link")
    return json.loads(base64.b64decode(json.loads(link.read_bytes())["payload"]))


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """The honest example pipeline, signed, with its BOM written once for the module's tests."""
    root = tmp_path_factory.mktemp("bom") / "project"
    shutil.copytree(REPO / "steps", root / "steps", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "layouts", root / "layouts")
    (root / "data" / "raw").mkdir(parents=True)
    digits = resources.files("sklearn.datasets.data") / "digits.csv.gz"
    (root / "data" / "raw" / "digits.csv.gz").write_bytes(digits.read_bytes())
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        for name in (*FUNCTIONARIES, "owner"):
            assert main(["keygen", name, "--dir", "keys"]) == 0
        run_pipeline(root)
        sign = ["layout", "sign", "layouts/train.yaml", "--key", "keys/owner", "-o", "root.layout"]
        assert main(sign) == 0
        assert main([*ARGS, "-o", "bom.cdx.json"]) == 0
    return root


@pytest.fixture
def bom(built: Path, monkeypatch: pytest.MonkeyPatch) -> dict:
    monkeypatch.chdir(built)
    return json.loads(Path("bom.cdx.json").read_text())


def test_bom_of_the_example_pipeline_is_valid_cyclonedx_1_6(bom: dict) -> None:
    from cyclonedx.schema import SchemaVersion
    from cyclonedx.validation.json import JsonStrictValidator

    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(json.dumps(bom))
    assert error is None, str(error)[:2000]
    assert bom["bomFormat"] == "CycloneDX" and bom["specVersion"] == "1.6"
    layout = [
        p for p in bom["metadata"]["properties"] if p["name"] == "ml-provenance:layout-sha256"
    ]
    assert layout[0]["value"] == sha256("root.layout")


def test_model_component_hashes_are_the_model_files(bom: dict) -> None:
    model = bom["metadata"]["component"]
    assert model["type"] == "machine-learning-model"
    files = {c["name"]: c["hashes"][0] for c in model["components"]}
    assert files == {
        name: {"alg": "SHA-256", "content": sha256(f"models/{name}")}
        for name in ("config.json", "model.safetensors")
    }
    commit = link_payload("train")["environment"]["git_commit"]
    if commit:
        assert model["pedigree"]["commits"] == [{"uid": commit}]


def test_model_card_has_parameters_datasets_and_verified_metrics(bom: dict) -> None:
    card = bom["metadata"]["component"]["modelCard"]
    props = {p["name"]: p["value"] for p in card["properties"]}
    recorded_params = link_payload("train")["environment"]["parameters"]
    assert props["ml-provenance:training-parameters"] == recorded_params
    assert json.loads(recorded_params)["epochs"] == 60
    by_ref = {c["bom-ref"]: c for c in bom["components"]}
    trained_on = [by_ref[d["ref"]] for d in card["modelParameters"]["datasets"]]
    # train's data: the dataset data/processed, one manifest (its hash), not its own script
    assert [c["hashes"] for c in trained_on] == [
        [{"alg": "SHA-256", "content": sha256(Dataset("data/processed").manifest_path)}]
    ]
    metrics = {m["type"]: m for m in card["quantitativeAnalysis"]["performanceMetrics"]}
    recorded = json.loads(Path("metrics/metrics.json").read_text())
    assert float(metrics["accuracy"]["value"]) == recorded["accuracy"]
    assert json.loads(props["ml-provenance:metrics-files"]) == ["metrics/metrics.json"]


def test_datasets_are_data_components_with_hashes(bom: dict) -> None:
    data = {c["name"]: c for c in bom["components"] if c["type"] == "data"}
    raw = data["data/raw/digits.csv.gz"]
    assert raw["hashes"] == [{"alg": "SHA-256", "content": sha256("data/raw/digits.csv.gz")}]
    assert raw["data"][0]["type"] == "dataset" and "properties" not in raw  # no step made it
    manifest = {"alg": "SHA-256", "content": sha256(Dataset("data/processed").manifest_path)}
    (processed,) = [c for c in data.values() if c["hashes"] == [manifest]]
    assert {"name": "ml-provenance:produced-by", "value": "prepare"} in processed["properties"]
    source = {c["name"] for c in bom["components"] if c["type"] == "file"}
    assert {"steps/prepare.py", "steps/train.py", "steps/evaluate.py"} <= source


def test_packages_of_each_step_are_libraries_with_purls(bom: dict) -> None:
    from importlib.metadata import version

    formula = bom["formulation"][0]
    libraries = {c["name"]: c for c in formula["components"]}
    assert all(c["type"] == "library" for c in libraries.values())
    numpy = libraries["numpy"]
    assert numpy["purl"] == f"pkg:pypi/numpy@{version('numpy')}" == numpy["bom-ref"]
    recorded = link_payload("train")["environment"]["packages"]
    assert f"numpy=={version('numpy')}" in recorded and recorded == sorted(recorded)
    (task,) = [t for t in formula["workflows"][0]["tasks"] if t["name"] == "train"]
    assert {"ref": numpy["purl"]} in task["resourceReferences"]
    assert len(task["resourceReferences"]) == len(recorded)


def test_formulation_lists_the_three_steps_with_inputs_and_outputs(bom: dict) -> None:
    workflow = bom["formulation"][0]["workflows"][0]
    assert [t["name"] for t in workflow["tasks"]] == ["prepare", "train", "evaluate"]
    assert workflow["uid"] == link_payload("train")["environment"]["pipeline_run_id"]
    train = workflow["tasks"][1]
    outputs = {o["resource"]["ref"] for o in train["outputs"]}
    model_refs = {c["bom-ref"] for c in bom["metadata"]["component"]["components"]}
    assert outputs == model_refs
    inputs = {i["resource"]["ref"] for i in train["inputs"]}
    assert f"artifact:steps/train.py@sha256:{sha256('steps/train.py')}" in inputs
    assert workflow["taskDependencies"] == [
        {"ref": "task:train", "dependsOn": ["task:prepare"]},
        {"ref": "task:evaluate", "dependsOn": ["task:prepare", "task:train"]},
    ]


def test_the_cli_reports_what_it_wrote(signed: Path, cli) -> None:
    r = cli(*ARGS, "-o", "out/bom.cdx.json", "--json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["output"] == "out/bom.cdx.json" and doc["verification"]["verified"]
    assert json.loads(Path("out/bom.cdx.json").read_text())["serialNumber"] == doc["serialNumber"]


def test_a_chain_that_does_not_verify_gets_no_bom(signed: Path, cli) -> None:
    weights = Path("models/model.safetensors")
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    before = snapshot(signed)
    r = cli(*ARGS, "-o", "bom.cdx.json")
    assert r.code == 1
    assert r.out.startswith("FAIL [files]") and "models/model.safetensors" in r.out
    assert not Path("bom.cdx.json").exists()
    assert snapshot(signed) == before


@pytest.mark.parametrize(
    ("output", "words"),
    [
        ("root.layout", "would overwrite root.layout, an input of this command"),
        ("keys/owner.pub", "an input of this command"),
        ("keys/trainer", "keys directory"),
    ],
)
def test_output_over_an_input_or_key_is_refused(signed: Path, cli, output: str, words) -> None:
    before = snapshot(signed)
    r = cli(*ARGS, "-o", output)
    assert r.code == 2 and words in r.err, r.err
    assert snapshot(signed) == before


def test_output_over_a_link_is_refused(signed: Path, cli) -> None:
    (link,) = Path(".provenance/links").glob("train.*.link")
    before = snapshot(signed)
    r = cli(*ARGS, "-o", str(link))
    assert r.code == 2 and "an input of this command" in r.err
    assert snapshot(signed) == before


def test_bom_to_stdout(signed: Path, cli) -> None:
    r = cli(*ARGS)
    assert r.code == 0
    assert json.loads(r.out)["metadata"]["component"]["type"] == "machine-learning-model"


def test_without_thresholds_metrics_come_from_the_digest_checked_metrics_file(
    signed: Path, cli
) -> None:
    text = Path("layouts/train.yaml").read_text()
    Path("layouts/plain.yaml").write_text(text[: text.index("# Evaluation policy")])
    assert (
        cli("layout", "sign", "layouts/plain.yaml", "--key", "keys/owner", "-o", "root.layout").code
        == 0
    )
    r = cli(*ARGS)
    assert r.code == 0, r.err
    card = json.loads(r.out)["metadata"]["component"]["modelCard"]
    metrics = {m["type"]: m["value"] for m in card["quantitativeAnalysis"]["performanceMetrics"]}
    recorded = json.loads(Path("metrics/metrics.json").read_text())
    assert metrics == {k: json.dumps(v) for k, v in recorded.items()}


def test_a_layout_without_a_model_gets_no_bom(signed: Path, cli) -> None:
    text = Path("layouts/train.yaml").read_text()
    Path("layouts/nomodel.yaml").write_text(text[: text.index("# The deliverable")])
    assert (
        cli(
            "layout", "sign", "layouts/nomodel.yaml", "--key", "keys/owner", "-o", "root.layout"
        ).code
        == 0
    )
    r = cli(*ARGS, "-o", "bom.cdx.json")
    assert r.code == 2 and "declares no model" in r.err
    assert not Path("bom.cdx.json").exists()
