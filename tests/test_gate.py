"""The MLflow promotion gate against real `mlflow server` processes (no mocks).

Each attack test asserts the refusal, the exit code, and that the registry did not change where
it matters: the alias stays where it was and no valid gate signature appears.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.conftest import BIN
from tests.mlflow_server import MlflowServer

pytestmark = pytest.mark.mlflow
MODEL_FILES = ("config.json", "model.safetensors")


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> MlflowServer:
    s = MlflowServer(tmp_path_factory.mktemp("mlflow")).start()
    yield s
    s.stop()


@pytest.fixture(scope="module")
def gate_keys(tmp_path_factory) -> Path:
    from provenance.signing import generate

    d = tmp_path_factory.mktemp("gate")
    generate("gate", str(d))
    return d


@pytest.fixture(scope="module")
def guarded(tmp_path_factory, gate_keys: Path) -> MlflowServer:
    """A server whose registry store is the ml-provenance plugin."""
    s = MlflowServer(
        tmp_path_factory.mktemp("mlflow-guarded"),
        "provenance-sqlite",
        {
            "PROVENANCE_GATE_PUBLIC_KEY": str(gate_keys / "gate.pub"),
            "PROVENANCE_PROTECTED_ALIASES": "champion,production",
        },
    ).start()
    yield s
    s.stop()


_names = iter(range(10_000))


@pytest.fixture
def model() -> str:
    return f"digits-{next(_names)}"


@pytest.fixture
def evidence(signed: Path) -> Path:
    """Pipeline run, layout signed; cwd is the project."""
    return signed


def client(server: MlflowServer):
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=server.uri, registry_uri=server.uri)


def register(cli, server: MlflowServer, model: str, path: str = "models", links=True) -> str:
    args = ["register", model, path, "--tracking-uri", server.uri, "--json"]
    if links:
        args += ["--links", ".provenance/links"]
    r = cli(*args)
    assert r.code == 0, r.err
    return json.loads(r.out)["version"]


def promote_args(server: MlflowServer, model: str, version: str, gate_keys: Path) -> list[str]:
    return [
        "promote",
        model,
        version,
        "--alias",
        "champion",
        "--layout",
        "root.layout",
        "--layout-key",
        "keys/owner.pub",
        "--gate-key",
        str(gate_keys / "gate"),
        "--tracking-uri",
        server.uri,
    ]


def promote(cli, server: MlflowServer, model: str, version: str, gate_keys: Path, *extra: str):
    return cli(*promote_args(server, model, version, gate_keys), *extra)


def alias_version(server: MlflowServer, model: str, alias: str = "champion") -> str | None:
    from mlflow.exceptions import MlflowException

    try:
        return str(client(server).get_model_version_by_alias(model, alias).version)
    except MlflowException:
        return None


def tags(server: MlflowServer, model: str, version: str) -> dict[str, str]:
    return dict(client(server).get_model_version(model, version).tags)


def tampered_copy(root: Path) -> str:
    out = root / "tampered"
    shutil.copytree(root / "models", out)
    w = out / "model.safetensors"
    data = bytearray(w.read_bytes())
    data[-1] ^= 1
    w.write_bytes(bytes(data))
    return str(out)


def test_honest_promotion_signs_the_decision_and_sets_the_alias(
    evidence, cli, server, model, gate_keys
) -> None:
    version = register(cli, server, model)
    r = promote(cli, server, model, version, gate_keys, "--json")
    assert r.code == 0, r.out + r.err
    doc = json.loads(r.out)
    assert doc["promoted"] and sorted(doc["files"]) == list(MODEL_FILES)
    assert alias_version(server, model) == version
    t = tags(server, model, version)
    assert t["provenance.verified"] == "true"
    for key in (
        "provenance.layout_sha256",
        "provenance.artifacts_sha256",
        "provenance.verified_at",
        "provenance.gate_signature",
        "provenance.gate_signature.champion",
    ):
        assert t[key]
    assert t["provenance.artifacts_sha256"] == doc["artifacts_sha256"]


def test_tampered_registered_weights_are_refused(evidence, cli, server, model, gate_keys) -> None:
    honest = register(cli, server, model)
    assert promote(cli, server, model, honest, gate_keys).code == 0
    forged = register(cli, server, model, tampered_copy(evidence))
    r = promote(cli, server, model, forged, gate_keys)
    assert r.code == 1
    assert r.out.startswith("REFUSED") and "hash mismatch for 'model.safetensors'" in r.out
    assert alias_version(server, model) == honest
    t = tags(server, model, forged)
    assert t["provenance.verified"] == "false" and "hash mismatch" in t["provenance.failure"]
    assert not any(k.startswith("provenance.gate_signature") for k in t)


def test_missing_link_is_refused(evidence, cli, server, model, gate_keys) -> None:
    links = evidence / "partial-links"
    shutil.copytree(".provenance/links", links)
    next(links.glob("evaluate.*.link")).unlink()
    version = register(cli, server, model, links=False)
    r = promote(cli, server, model, version, gate_keys, "--links", links)
    assert r.code == 1 and "step 'evaluate' needs 1 link(s)" in r.out
    assert alias_version(server, model) is None
    assert tags(server, model, version)["provenance.verified"] == "false"


def test_link_signed_by_a_foreign_key_is_refused(evidence, cli, server, model, gate_keys) -> None:
    from provenance.links import write_link
    from provenance.signing import load_signer

    links = evidence / "foreign-links"
    shutil.copytree(".provenance/links", links)
    honest = next(links.glob("train.*.link"))
    payload = base64.b64decode(json.loads(honest.read_bytes())["payload"])
    honest.unlink()
    cli("keygen", "mallory", "--dir", "keys")
    write_link(payload, load_signer("keys/mallory"), "train", str(links))
    version = register(cli, server, model, links=False)
    r = promote(cli, server, model, version, gate_keys, "--links", links)
    assert r.code == 1 and "signed by unknown key" in r.out
    assert alias_version(server, model) is None


def test_links_are_taken_from_the_versions_run(evidence, cli, server, model, gate_keys) -> None:
    version = register(cli, server, model, links=True)
    assert promote(cli, server, model, version, gate_keys).code == 0  # no --links given


def test_forged_verified_tags_are_not_trusted(evidence, cli, server, model, gate_keys) -> None:
    forged = register(cli, server, model, tampered_copy(evidence))
    mc = client(server)
    for key, value in {
        "provenance.verified": "true",
        "provenance.artifacts_sha256": "0" * 64,
        "provenance.gate_signature.champion": "abcd:AAAA",
    }.items():
        mc.set_model_version_tag(model, forged, key, value)
    r = promote(cli, server, model, forged, gate_keys)
    assert r.code == 1 and "hash mismatch" in r.out
    assert alias_version(server, model) is None
    assert tags(server, model, forged)["provenance.verified"] == "false"
    fetched = cli(
        "fetch",
        f"models:/{model}/{forged}",
        evidence / "out",
        "--gate-key",
        gate_keys / "gate.pub",
        "--tracking-uri",
        server.uri,
    )
    assert fetched.code == 1 and not (evidence / "out").exists()


def test_load_verified_refuses_weights_overwritten_after_promotion(
    evidence, cli, server, model, gate_keys
) -> None:
    from provenance.errors import VerificationError
    from provenance.gate import load_verified

    version = register(cli, server, model)
    assert promote(cli, server, model, version, gate_keys).code == 0
    ok = cli(
        "fetch",
        f"models:/{model}@champion",
        evidence / "serving",
        "--gate-key",
        gate_keys / "gate.pub",
        "--tracking-uri",
        server.uri,
    )
    assert ok.code == 0 and sorted(p.name for p in (evidence / "serving").iterdir()) == list(
        MODEL_FILES
    )
    # Overwrite the registered weights in the server's artifact store, after promotion.
    run_id = client(server).get_model_version(model, version).run_id
    (stored,) = server.artifacts.rglob(f"{run_id}/artifacts/model/model.safetensors")
    stored.write_bytes(b"backdoored weights")
    with pytest.raises(VerificationError, match=r"hash mismatch for 'model\.safetensors'"):
        load_verified(
            f"models:/{model}@champion",
            str(evidence / "serving2"),
            str(gate_keys / "gate.pub"),
            tracking_uri=server.uri,
        )
    assert not (evidence / "serving2").exists()
    assert not list(evidence.glob(".provenance-fetch-*"))
    r = cli(
        "fetch",
        f"models:/{model}@champion",
        evidence / "serving3",
        "--gate-key",
        gate_keys / "gate.pub",
        "--tracking-uri",
        server.uri,
    )
    assert r.code == 1 and "artifacts changed after promotion" in r.err


def test_two_promotions_racing_for_one_alias(evidence, cli, server, model, gate_keys) -> None:
    honest = register(cli, server, model)
    forged = register(cli, server, model, tampered_copy(evidence))
    results: dict[str, subprocess.CompletedProcess[str]] = {}

    def run(version: str) -> None:
        results[version] = subprocess.run(
            [str(BIN / "provenance"), *promote_args(server, model, version, gate_keys)],
            capture_output=True,
            text=True,
            cwd=evidence,
        )

    threads = [threading.Thread(target=run, args=(v,)) for v in (honest, forged)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results[honest].returncode == 0, results[honest].stderr
    assert results[forged].returncode == 1
    assert alias_version(server, model) == honest
    assert tags(server, model, honest)["provenance.verified"] == "true"
    assert tags(server, model, forged)["provenance.verified"] == "false"


def test_mlflow_down_midway_exits_4_and_leaves_the_registry_unchanged(
    evidence, cli, tmp_path, model, gate_keys, monkeypatch
) -> None:
    import provenance.gate._promote as gate_promote

    srv = MlflowServer(tmp_path / "mlflow-down").start()
    try:
        version = register(cli, srv, model)
        real_verify = gate_promote.verify

        def verify_then_lose_the_server(*args, **kwargs):
            result = real_verify(*args, **kwargs)
            srv.stop()  # the server goes away after verification, before the decision is written
            return result

        monkeypatch.setattr(gate_promote, "verify", verify_then_lose_the_server)
        monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
        r = promote(cli, srv, model, version, gate_keys)
        assert r.code == 4, r.out + r.err
        assert "Traceback" not in r.err
        srv.start()
        assert alias_version(srv, model) is None
        assert not any(k.startswith("provenance.") for k in tags(srv, model, version))
    finally:
        srv.stop()


def test_unreachable_server_is_exit_4(evidence, cli, model, gate_keys, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    dead = MlflowServer(Path("unused"))
    from tests.mlflow_server import free_port

    dead.port = free_port()
    r = promote(cli, dead, model, "1", gate_keys)
    assert r.code == 4 and "Traceback" not in r.err


def test_unknown_model_version_is_exit_3(evidence, cli, server, gate_keys) -> None:
    r = promote(cli, server, "no-such-model", "1", gate_keys)
    assert r.code == 3, r.err


def test_plugin_refuses_a_direct_alias_to_a_protected_name(
    evidence, cli, guarded, model, gate_keys
) -> None:
    from mlflow.exceptions import MlflowException

    version = register(cli, guarded, model)
    mc = client(guarded)
    with pytest.raises(MlflowException, match="ml-provenance gate") as info:
        mc.set_registered_model_alias(model, "champion", version)
    assert "no gate signature" in str(info.value)
    assert alias_version(guarded, model) is None
    mc.set_registered_model_alias(model, "staging", version)  # not protected
    assert alias_version(guarded, model, "staging") == version
    with pytest.raises(MlflowException, match="ml-provenance gate"):
        mc.transition_model_version_stage(model, version, "Production")


def test_plugin_accepts_the_gates_promotion_and_refuses_copies_and_forgeries(
    evidence, cli, guarded, model, gate_keys
) -> None:
    from mlflow.exceptions import MlflowException

    version = register(cli, guarded, model)
    r = promote(cli, guarded, model, version, gate_keys)
    assert r.code == 0, r.out + r.err
    assert alias_version(guarded, model) == version
    mc = client(guarded)
    # copy_model_version copies the (valid) tags to another name: the signature names the source.
    copy = mc.copy_model_version(f"models:/{model}/{version}", f"{model}-copy")
    with pytest.raises(MlflowException, match="does not verify"):
        mc.set_registered_model_alias(f"{model}-copy", "champion", copy.version)
    # Tags copied by hand from the verified version onto a tampered one.
    forged = register(cli, guarded, model, tampered_copy(evidence))
    for key, value in tags(guarded, model, version).items():
        mc.set_model_version_tag(model, forged, key, value)
    with pytest.raises(MlflowException, match="does not verify"):
        mc.set_registered_model_alias(model, "champion", forged)
    assert alias_version(guarded, model) == version


def test_plugin_rechecks_files_changed_after_promotion(
    evidence, cli, guarded, model, gate_keys
) -> None:
    from mlflow.exceptions import MlflowException

    version = register(cli, guarded, model)
    assert promote(cli, guarded, model, version, gate_keys).code == 0
    mc = client(guarded)
    mc.delete_registered_model_alias(model, "champion")
    run_id = mc.get_model_version(model, version).run_id
    (stored,) = guarded.artifacts.rglob(f"{run_id}/artifacts/model/model.safetensors")
    stored.write_bytes(b"swapped")
    with pytest.raises(MlflowException, match="changed since the gate verified them"):
        mc.set_registered_model_alias(model, "champion", version)


def test_step_inside_an_mlflow_run_logs_its_link_and_tags(evidence, server, monkeypatch) -> None:
    import mlflow

    import provenance

    mlflow.set_tracking_uri(server.uri)
    Path("in.txt").write_text("x")

    @provenance.step("tiny", materials=["in.txt"], products=["out.txt"], key="keys/trainer")
    def tiny() -> None:
        Path("out.txt").write_text("y")

    with mlflow.start_run() as run:
        tiny()
    mc = client(server)
    names = [a.path for a in mc.list_artifacts(run.info.run_id, "provenance/links")]
    assert len(names) == 1 and names[0].startswith("provenance/links/tiny.")
    run_tags = mc.get_run(run.info.run_id).data.tags
    assert run_tags["provenance.step"] == "tiny" and run_tags["provenance.run_id"]
    link = next(Path(".provenance/links").glob("tiny.*.link"))
    payload = json.loads(base64.b64decode(json.loads(link.read_bytes())["payload"]))
    assert payload["environment"]["mlflow_run_id"] == run.info.run_id
    mlflow.set_tracking_uri(None)
    assert sys.modules.get("mlflow") is not None


def test_example_serve_verified_model(evidence, cli, server, model, gate_keys) -> None:
    from tests.conftest import REPO

    version = register(cli, server, model)
    assert promote(cli, server, model, version, gate_keys).code == 0
    proc = subprocess.run(
        [
            sys.executable,
            str(REPO / "examples" / "serve_verified_model.py"),
            model,
            str(gate_keys / "gate.pub"),
            "serving",
        ],
        capture_output=True,
        text=True,
        env={**os.environ, "MLFLOW_TRACKING_URI": server.uri},
    )
    assert proc.returncode == 0, proc.stderr
    assert f"version {version}" in proc.stdout and "'weights': (64, 10)" in proc.stdout


def test_files_in_normally_excluded_dirs_of_a_registered_model_are_refused(
    evidence, cli, server, model, gate_keys
) -> None:
    """A `__pycache__/` planted among the registered files would otherwise be served unverified."""
    planted = evidence / "planted"
    shutil.copytree(evidence / "models", planted)
    (planted / "__pycache__").mkdir()
    (planted / "__pycache__" / "loader.cpython-311.pyc").write_bytes(b"evil bytecode")
    version = register(cli, server, model, str(planted))
    r = promote(cli, server, model, version, gate_keys)
    assert r.code == 1 and "extra file: '__pycache__/loader.cpython-311.pyc'" in r.out
    assert alias_version(server, model) is None
