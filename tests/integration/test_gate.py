"""The MLflow promotion gate against real `mlflow server` processes (no mocks).

Each attack test asserts the refusal, the exit code, and that the registry did not change where
it matters: the alias stays where it was and no valid gate signature appears.
"""

from __future__ import annotations

import base64
import hashlib
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


def register(
    cli, server: MlflowServer, model: str, path: str = "models", links=True, evidence=True
) -> str:
    """Register PATH; with the pipeline's metrics as evidence (the layout's thresholds)."""
    args = ["register", model, path, "--tracking-uri", server.uri, "--json"]
    if links:
        args += ["--links", ".provenance/links"]
    if evidence and Path("metrics/metrics.json").is_file():
        args += ["--evidence", "metrics/metrics.json"]
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


def decision(server: MlflowServer, model: str, version: str, gate_keys: Path, alias="champion"):
    """The gate's record for `alias` on the version, opened with the gate's public key."""
    from provenance.gate._decision import decision_for
    from provenance.signing import load_public_key

    key = load_public_key(str(gate_keys / "gate.pub"))
    return decision_for(tags(server, model, version), key, model, version, alias)


def fetch(cli, server: MlflowServer, uri: str, dest: Path, gate_keys: Path, *extra: str):
    return cli(
        "fetch",
        uri,
        dest,
        "--gate-pub-key",
        gate_keys / "gate.pub",
        "--tracking-uri",
        server.uri,
        *extra,
    )


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
    # One signed record (and its VSA) for (model, version, champion); nothing else there.
    assert sorted(k for k in tags(server, model, version) if k.startswith("provenance.")) == [
        "provenance.decision.champion",
        "provenance.vsa.champion",
    ]
    record = decision(server, model, version, gate_keys)
    assert record.passed and record.artifacts_sha256 == doc["artifacts_sha256"]
    assert record.layout_sha256 == hashlib.sha256(Path("root.layout").read_bytes()).hexdigest()
    assert dict(record.files) == doc["files"] and doc["decision"]["result"] == "PASSED"


def test_tampered_registered_weights_are_refused(evidence, cli, server, model, gate_keys) -> None:
    honest = register(cli, server, model)
    assert promote(cli, server, model, honest, gate_keys).code == 0
    forged = register(cli, server, model, tampered_copy(evidence))
    r = promote(cli, server, model, forged, gate_keys)
    assert r.code == 1
    assert r.out.startswith("REFUSED") and "hash mismatch for 'model.safetensors'" in r.out
    assert alias_version(server, model) == honest
    refused = decision(server, model, forged, gate_keys)
    assert refused.result == "FAILED" and "hash mismatch" in refused.reasons[0]


def test_missing_link_is_refused(evidence, cli, server, model, gate_keys) -> None:
    links = evidence / "partial-links"
    shutil.copytree(".provenance/links", links)
    next(links.glob("evaluate.*.link")).unlink()
    version = register(cli, server, model, links=False)
    r = promote(cli, server, model, version, gate_keys, "--links", links)
    assert r.code == 1 and "step 'evaluate' needs 1 link(s)" in r.out
    assert alias_version(server, model) is None
    assert decision(server, model, version, gate_keys).result == "FAILED"


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
    # Without the plugin anyone with EDIT can write tags; none of these are trusted.
    for key, value in {
        "provenance.verified": "true",
        "provenance.decision.champion": '{"payload":"e30=","payloadType":"x","signatures":[]}',
    }.items():
        mc.set_model_version_tag(model, forged, key, value)
    fetched = fetch(cli, server, f"models:/{model}/{forged}", evidence / "out", gate_keys)
    assert fetched.code == 1 and not (evidence / "out").exists()
    r = promote(cli, server, model, forged, gate_keys)
    assert r.code == 1 and "hash mismatch" in r.out
    assert alias_version(server, model) is None
    assert decision(server, model, forged, gate_keys).result == "FAILED"


def test_load_verified_refuses_weights_overwritten_after_promotion(
    evidence, cli, server, model, gate_keys
) -> None:
    from provenance.errors import VerificationError
    from provenance.gate import load_verified

    version = register(cli, server, model)
    assert promote(cli, server, model, version, gate_keys).code == 0
    ok = fetch(cli, server, f"models:/{model}@champion", evidence / "serving", gate_keys)
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
    r = fetch(cli, server, f"models:/{model}@champion", evidence / "serving3", gate_keys)
    assert r.code == 1 and "artifacts changed after promotion" in r.err
    # The destination already holding the verified copy is never replaced by a bad one.
    before = sorted(p.read_bytes() for p in (evidence / "serving").iterdir())
    r = fetch(cli, server, f"models:/{model}@champion", evidence / "serving", gate_keys, "--force")
    assert (
        r.code == 1 and sorted(p.read_bytes() for p in (evidence / "serving").iterdir()) == before
    )


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
    assert decision(server, model, honest, gate_keys).passed
    assert decision(server, model, forged, gate_keys).result == "FAILED"


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
    assert "no gate decision for alias 'champion'" in str(info.value)
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
    # copy_model_version drops the gate's records: the copy has no decision to promote on.
    copy = mc.copy_model_version(f"models:/{model}/{version}", f"{model}-copy")
    assert not any(
        k.startswith("provenance.") for k in tags(guarded, f"{model}-copy", copy.version)
    )
    with pytest.raises(MlflowException, match="no gate decision"):
        mc.set_registered_model_alias(f"{model}-copy", "champion", copy.version)
    # The valid record copied by hand onto a tampered version is refused at the tag write.
    forged = register(cli, guarded, model, tampered_copy(evidence))
    record = tags(guarded, model, version)["provenance.decision.champion"]
    with pytest.raises(MlflowException, match="copied from another version"):
        mc.set_model_version_tag(model, forged, "provenance.decision.champion", record)
    with pytest.raises(MlflowException, match="no gate decision"):
        mc.set_registered_model_alias(model, "champion", forged)
    assert alias_version(guarded, model) == version
    assert "provenance.decision.champion" not in tags(guarded, model, forged)


def test_plugin_rechecks_files_changed_after_promotion(
    evidence, cli, guarded, model, gate_keys
) -> None:
    from mlflow.exceptions import MlflowException

    version = register(cli, guarded, model)
    assert promote(cli, guarded, model, version, gate_keys).code == 0
    mc = client(guarded)
    run_id = mc.get_model_version(model, version).run_id
    (stored,) = guarded.artifacts.rglob(f"{run_id}/artifacts/model/model.safetensors")
    stored.write_bytes(b"swapped")
    with pytest.raises(
        MlflowException, match=r"changed since the gate verified them.*'model\.safetensors'"
    ):
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


# --- The layout names the model -------------------------------------------------------------


@pytest.mark.parametrize(
    ("registered", "words"),
    [
        ("metrics", ("extra file: 'metrics.json'", "missing: 'model.safetensors'")),
        ("data/processed", ("extra file: 'X_train.npy'", "missing: 'config.json'")),
        ("subset", ("missing: 'config.json'",)),
        ("superset", ("extra file: 'metrics.json'",)),
    ],
)
def test_version_that_is_not_exactly_the_declared_model_is_refused(
    evidence, cli, server, model, gate_keys, registered, words
) -> None:
    """Another step's products verify against the chain just as well; the layout's model
    declaration is what makes the gate refuse them (and subsets or supersets of the model)."""
    path = registered
    if registered in ("subset", "superset"):
        shutil.copytree("models", registered)
        if registered == "subset":
            Path(registered, "config.json").unlink()
        else:
            shutil.copy("metrics/metrics.json", registered)
    version = register(cli, server, model, path)
    r = promote(cli, server, model, version, gate_keys)
    assert r.code == 1, r.out + r.err
    for word in words:
        assert word in r.out, r.out
    assert alias_version(server, model) is None
    assert decision(server, model, version, gate_keys).result == "FAILED"


def test_layout_without_a_model_declaration_cannot_promote(
    evidence, cli, server, model, gate_keys
) -> None:
    text = Path("layouts/train.yaml").read_text()
    Path("layouts/nomodel.yaml").write_text(text[: text.index("# The deliverable")])
    assert (
        cli(
            "layout", "sign", "layouts/nomodel.yaml", "--key", "keys/owner", "-o", "root.layout"
        ).code
        == 0
    )
    assert cli("verify", "--layout", "root.layout", "--layout-key", "keys/owner.pub").code == 0
    version = register(cli, server, model)
    r = promote(cli, server, model, version, gate_keys)
    assert r.code == 1 and "declares no model" in r.out
    assert alias_version(server, model) is None


def test_artifact_path_can_no_longer_point_the_gate_elsewhere(
    evidence, cli, server, model, gate_keys
) -> None:
    version = register(cli, server, model, "metrics")
    r = promote(cli, server, model, version, gate_keys, "--artifact-path", "metrics/")
    assert r.code == 2 and "No such option" in r.err
    assert alias_version(server, model) is None


# --- Decisions per alias, rollback, revoke ----------------------------------------------------


def test_second_alias_leaves_the_first_verifiable(evidence, cli, server, model, gate_keys) -> None:
    version = register(cli, server, model)
    assert promote(cli, server, model, version, gate_keys).code == 0
    args = promote_args(server, model, version, gate_keys)
    r = cli(*args[:3], "--alias", "staging", *args[5:])
    assert r.code == 0, r.out + r.err
    assert decision(server, model, version, gate_keys).passed
    assert decision(server, model, version, gate_keys, "staging").passed
    assert fetch(cli, server, f"models:/{model}@champion", evidence / "a", gate_keys).code == 0
    assert fetch(cli, server, f"models:/{model}@staging", evidence / "b", gate_keys).code == 0


def test_edit_user_cannot_forge_delete_or_replay_gate_records(
    evidence, cli, guarded, model, gate_keys
) -> None:
    from mlflow.exceptions import MlflowException

    first = register(cli, guarded, model)
    assert promote(cli, guarded, model, first, gate_keys).code == 0
    old_record = tags(guarded, model, first)["provenance.decision.champion"]
    assert promote(cli, guarded, model, first, gate_keys).code == 0  # a newer decision
    current = tags(guarded, model, first)
    mc = client(guarded)
    attempts = [
        lambda: mc.set_model_version_tag(model, first, "provenance.verified", "true"),
        lambda: mc.set_model_version_tag(model, first, "Provenance.Verified", "true"),
        lambda: mc.set_model_version_tag(model, first, "provenance.decision.champion", "x"),
        lambda: mc.set_model_version_tag(model, first, "provenance.decision.champion", old_record),
        lambda: mc.delete_model_version_tag(model, first, "provenance.decision.champion"),
        lambda: mc.set_registered_model_tag(model, "provenance.verified", "true"),
        lambda: mc.delete_registered_model_alias(model, "champion"),
        lambda: mc.delete_model_version(model, first),
        lambda: mc.rename_registered_model(model, f"{model}-renamed"),
        lambda: mc.delete_registered_model(model),
    ]
    for attempt in attempts:
        with pytest.raises(MlflowException, match="ml-provenance gate") as info:
            attempt()
        assert info.value.error_code == "PERMISSION_DENIED"
    assert tags(guarded, model, first) == current
    assert alias_version(guarded, model) == first


def test_plain_alias_rollback_is_refused_but_promote_rolls_back(
    evidence, cli, guarded, model, gate_keys
) -> None:
    from mlflow.exceptions import MlflowException

    old = register(cli, guarded, model)
    assert promote(cli, guarded, model, old, gate_keys).code == 0
    new = register(cli, guarded, model)
    assert promote(cli, guarded, model, new, gate_keys).code == 0
    mc = client(guarded)
    with pytest.raises(MlflowException, match="rollback refused"):
        mc.set_registered_model_alias(model, "champion", old)
    assert alias_version(guarded, model) == new
    assert promote(cli, guarded, model, old, gate_keys).code == 0  # deliberate: re-verified
    assert alias_version(guarded, model) == old


def test_revoked_version_holds_no_protected_alias_and_is_not_fetched(
    evidence, cli, guarded, model, gate_keys
) -> None:
    from mlflow.exceptions import MlflowException

    version = register(cli, guarded, model)
    assert promote(cli, guarded, model, version, gate_keys).code == 0
    r = cli(
        "revoke",
        model,
        version,
        "--reason",
        "trained on leaked data",
        "--gate-key",
        gate_keys / "gate",
        "--tracking-uri",
        guarded.uri,
    )
    assert r.code == 0 and r.out.startswith("REVOKED"), r.out + r.err
    assert alias_version(guarded, model) is None
    mc = client(guarded)
    with pytest.raises(MlflowException, match="was revoked: trained on leaked data"):
        mc.set_registered_model_alias(model, "champion", version)
    assert promote(cli, guarded, model, version, gate_keys).code != 0
    assert alias_version(guarded, model) is None
    f = fetch(cli, guarded, f"models:/{model}/{version}", evidence / "out", gate_keys)
    assert f.code == 1 and not (evidence / "out").exists()
    with pytest.raises(MlflowException, match="already revoked"):
        mc.set_model_version_tag(model, version, "provenance.revoked", "x")


@pytest.mark.parametrize(
    "alias", ["Champion", "CHAMPION", "champion ", "ch\u0430mpion", "champ\u200bion"]
)
def test_look_alike_aliases_are_protected_or_refused(
    evidence, cli, guarded, model, gate_keys, alias
) -> None:
    from mlflow.exceptions import MlflowException

    version = register(cli, guarded, model)
    mc = client(guarded)
    with pytest.raises(MlflowException) as info:
        mc.set_registered_model_alias(model, alias, version)
    assert (
        "ml-provenance gate" in str(info.value)
        or info.value.error_code == "INVALID_PARAMETER_VALUE"
    )
    assert dict(mc.get_registered_model(model).aliases) == {}


def test_plugin_logs_its_configuration_and_refusals(guarded, gate_keys) -> None:
    from provenance.signing import load_public_key

    log = (guarded.root / "server.log").read_text()
    keyid = load_public_key(str(gate_keys / "gate.pub")).keyid
    assert f"protecting aliases champion, production; gate key {keyid}" in log


@pytest.mark.parametrize("raw", ["", " , ", "champion;drop", "\u0441hampion"])
def test_bad_protected_alias_configuration_keeps_the_defaults(raw) -> None:
    from provenance.gate.mlflow._store import protected_aliases

    assert protected_aliases(raw) == {"champion", "production"}
    assert protected_aliases("release,Prod-2") == {"release", "prod-2", "champion", "production"}


def test_alias_flood_does_not_block_a_legitimate_promotion(
    evidence, cli, guarded, model, gate_keys
) -> None:
    """Requests without a decision are refused before any re-hash, so a flood cannot starve
    the gate's own promotion."""
    import urllib.error
    import urllib.request

    version = register(cli, guarded, model)
    stop = threading.Event()
    refused = []

    def flood() -> None:
        body = json.dumps({"name": model, "alias": "champion", "version": version}).encode()
        for _ in range(200):
            if stop.is_set():
                return
            req = urllib.request.Request(
                f"{guarded.uri}/api/2.0/mlflow/registered-models/alias",
                data=body,
                method="POST",
                headers={"Content-Type": "application/json"},
            )
            try:
                urllib.request.urlopen(req, timeout=10)
            except urllib.error.HTTPError as exc:
                refused.append((exc.code, exc.read().decode()[:300]))

    threads = [threading.Thread(target=flood) for _ in range(4)]
    for t in threads:
        t.start()
    try:
        r = promote(cli, guarded, model, version, gate_keys)
    finally:
        stop.set()
        for t in threads:
            t.join()
    assert r.code == 0, r.out + r.err
    # Before the decision exists every flood request is refused (403); once it exists, setting
    # the alias to this verified version is legitimate and may race MLflow's own insert (400).
    assert refused and all(code in (400, 403) for code, _ in refused), refused
    assert any(code == 403 for code, _ in refused)
    assert alias_version(guarded, model) == version


# --- The decision as a SLSA VSA; the gate's own scan ----------------------------------------


def test_promote_prints_stores_and_exports_the_vsa(evidence, cli, server, model, gate_keys) -> None:
    from provenance.attest import VerificationSummary, read_statement
    from provenance.signing import load_public_key

    version = register(cli, server, model)
    r = promote(
        cli, server, model, version, gate_keys, "--json", "--vsa-output", "vsa.intoto.jsonl"
    )
    assert r.code == 0, r.out + r.err
    doc = json.loads(r.out)
    gate_pub = load_public_key(str(gate_keys / "gate.pub"))
    signed = read_statement(Path("vsa.intoto.jsonl"), [gate_pub], VerificationSummary)
    vsa = signed.statement.predicate
    assert vsa.verification_result == "PASSED" and vsa.resource_uri == f"models:/{model}/{version}"
    assert "ML_PROVENANCE_CHAIN_VERIFIED" in vsa.verified_levels
    assert "ML_MODEL_SCANNED" in vsa.verified_levels
    assert signed.statement.digests() == doc["files"]
    assert vsa.policy.digest["sha256"] == doc["decision"]["layout_sha256"]
    assert len(vsa.input_attestations) == 3  # the three links, by digest
    assert doc["vsa"] == json.loads(Path("vsa.intoto.jsonl").read_text())
    stored = tags(server, model, version)["provenance.vsa.champion"]
    assert hashlib.sha256(stored.encode()).hexdigest() == doc["decision"]["vsa_sha256"]


def test_fetch_refuses_a_replaced_vsa(evidence, cli, server, model, gate_keys) -> None:
    """The decision names its VSA by digest: swapping in another (even gate-signed) VSA fails."""
    first = register(cli, server, model)
    assert promote(cli, server, model, first, gate_keys).code == 0
    other = register(cli, server, model)
    args = promote_args(server, model, other, gate_keys)
    assert cli(*args[:3], "--alias", "staging", *args[5:]).code == 0
    mc = client(server)  # an unguarded server: anyone with EDIT can write tags
    mc.set_model_version_tag(
        model,
        first,
        "provenance.vsa.champion",
        tags(server, model, other)["provenance.vsa.staging"],
    )
    r = fetch(cli, server, f"models:/{model}@champion", evidence / "out", gate_keys)
    assert r.code == 1 and "not the VSA the decision names" in r.err
    assert not (evidence / "out").exists()


def test_malicious_pickle_as_the_model_is_refused_by_promote(
    project, cli, server, model, gate_keys
) -> None:
    """A one-step pipeline whose declared model is a pickle with a `__reduce__` payload: the chain
    verifies, the gate's scan names the import and refuses; nothing is ever unpickled."""
    marker = project / "PWNED"
    payload = (
        b"\x80\x04\x95\x1d\x00\x00\x00\x00\x00\x00\x00\x8c\x05posix\x94\x8c\x06system\x94"
        b"\x93\x94\x8c\x0btouch PWNED\x94\x85\x94R\x94."
    )
    Path("write_model.py").write_text(
        "import os, sys\nos.makedirs('models', exist_ok=True)\n"
        f"open('models/model.pkl', 'wb').write({payload!r})\n"
    )
    Path("layouts/pickle.yaml").write_text(
        "expires: 30d\nfunctionaries:\n  trainer: ../keys/trainer.pub\nsteps:\n"
        "  - name: train\n    functionaries: [trainer]\n"
        "    materials:\n      - allow: write_model.py\n"
        '    products:\n      - create: "models/*"\n'
        'model:\n  step: train\n  products: "models/*"\n'
    )
    assert (
        cli(
            "layout", "sign", "layouts/pickle.yaml", "--key", "keys/owner", "-o", "root.layout"
        ).code
        == 0
    )
    r = cli(
        "run",
        "train",
        "-m",
        "write_model.py",
        "-p",
        "models/*",
        "--key",
        "keys/trainer",
        "--",
        sys.executable,
        "write_model.py",
    )
    assert r.code == 0, r.err
    assert verify_ok(cli)
    version = register(cli, server, model)
    r = promote(cli, server, model, version, gate_keys)
    assert r.code == 1 and "posix.system" in r.out, r.out + r.err
    assert alias_version(server, model) is None
    assert decision(server, model, version, gate_keys).result == "FAILED"
    assert not marker.exists()


def verify_ok(cli) -> bool:
    return cli("verify", "--layout", "root.layout", "--layout-key", "keys/owner.pub").code == 0


def test_inspection_runs_in_the_downloaded_version_during_promote(
    evidence, cli, server, model, gate_keys
) -> None:
    """An owner-signed inspection runs where the checked files are: the project during
    `verify`, the downloaded version during `promote`; it passes on an honest run."""
    check = (
        "import os, sys; sys.exit(0 if os.path.exists('model.safetensors') or "
        "os.path.exists('models/model.safetensors') else 3)"
    )
    text = Path("layouts/train.yaml").read_text()
    Path("layouts/inspected.yaml").write_text(
        text
        + "inspections:\n  - name: weights-present\n"
        + f"    run: [{sys.executable!r}, -c, {check!r}]\n"
        + '    materials:\n      - allow: "**"\n    products:\n      - allow: "**"\n'
    )
    r = cli("layout", "sign", "layouts/inspected.yaml", "--key", "keys/owner", "-o", "root.layout")
    assert r.code == 0, r.err
    assert verify_ok(cli)
    version = register(cli, server, model)
    r = promote(cli, server, model, version, gate_keys)
    assert r.code == 0, r.out + r.err
    assert alias_version(server, model) == version


def test_links_gathered_from_the_tracking_server_by_pipeline_run_id(
    tmp_path, cli, server, monkeypatch
) -> None:
    """Steps on separate machines share only the server: each logs its link into its own MLflow
    run, and `verify --links mlflow:PIPELINE_RUN` gathers them (signatures checked as always)."""
    import mlflow

    import provenance

    monkeypatch.chdir(tmp_path)
    for name in ("owner", "trainer"):
        assert cli("keygen", name, "--dir", "keys").code == 0
    Path("layout.yaml").write_text(
        "expires: 30d\nfunctionaries:\n  trainer: keys/trainer.pub\nsteps:\n"
        "  - name: make\n    functionaries: [trainer]\n"
        "    materials:\n      - allow: in.txt\n    products:\n      - create: mid.txt\n"
        "  - name: use\n    functionaries: [trainer]\n"
        "    materials:\n      - match: mid.txt\n        from: make\n"
        "    products:\n      - create: out.txt\n"
    )
    assert (
        cli("layout", "sign", "layout.yaml", "--key", "keys/owner", "-o", "root.layout").code == 0
    )
    Path("in.txt").write_text("x")
    monkeypatch.setenv("PROVENANCE_RUN_ID", "pipe-7f3a")
    mlflow.set_tracking_uri(server.uri)

    @provenance.step("make", materials=["in.txt"], products=["mid.txt"], key="keys/trainer")
    def make() -> None:
        Path("mid.txt").write_text("y")

    @provenance.step("use", materials=["mid.txt"], products=["out.txt"], key="keys/trainer")
    def use() -> None:
        Path("out.txt").write_text("z")

    for fn in (make, use):
        with mlflow.start_run():
            fn()
    mlflow.set_tracking_uri(None)
    shutil.rmtree(".provenance/links")  # nothing local: the links live on the server
    args = ("verify", "--layout", "root.layout", "--layout-key", "keys/owner.pub")
    r = cli(*args, "--links", "mlflow:pipe-7f3a", "--tracking-uri", server.uri)
    assert r.code == 0 and r.out.startswith("PASS"), r.out + r.err
    r = cli(*args, "--links", "mlflow:no-such-run", "--tracking-uri", server.uri)
    assert r.code == 3 and "no run carries" in r.err


# --- Evaluation thresholds -----------------------------------------------------------------------


def vsa_levels(doc: dict, gate_keys: Path) -> tuple[str, ...]:
    """The verifiedLevels of the VSA in a `promote --json` document, opened with the gate key."""
    from provenance.attest import VerificationSummary, read_statement
    from provenance.signing import load_public_key

    gate_pub = load_public_key(str(gate_keys / "gate.pub"))
    signed = read_statement(json.dumps(doc["vsa"]).encode(), [gate_pub], VerificationSummary)
    return signed.statement.predicate.verified_levels


def test_thresholds_met_on_the_registered_evidence_reach_the_vsa(
    evidence, cli, server, model, gate_keys
) -> None:
    version = register(cli, server, model)  # logs metrics/metrics.json as evidence
    r = promote(cli, server, model, version, gate_keys, "--json")
    assert r.code == 0, r.out + r.err
    doc = json.loads(r.out)
    checked = {t["metric"]: t for t in doc["verification"]["thresholds"]}
    metrics = json.loads(Path("metrics/metrics.json").read_text())
    assert checked["accuracy"]["actual"] == metrics["accuracy"] and checked["accuracy"]["met"]
    assert "ML_EVALUATION_THRESHOLDS_MET" in vsa_levels(doc, gate_keys)
    assert alias_version(server, model) == version


def test_promote_without_the_metrics_evidence_fails_closed(
    evidence, cli, server, model, gate_keys
) -> None:
    version = register(cli, server, model, evidence=False)
    r = promote(cli, server, model, version, gate_keys)
    assert r.code == 1
    assert "metrics file 'metrics/metrics.json'" in r.out and "missing from the evidence" in r.out
    assert alias_version(server, model) is None
    assert decision(server, model, version, gate_keys).result == "FAILED"


def test_promote_takes_the_evidence_from_a_local_directory(
    evidence, cli, server, model, gate_keys, tmp_path
) -> None:
    version = register(cli, server, model, evidence=False)
    local = tmp_path / "evidence"
    (local / "metrics").mkdir(parents=True)
    shutil.copy("metrics/metrics.json", local / "metrics" / "metrics.json")
    r = promote(cli, server, model, version, gate_keys, "--evidence", str(local), "--json")
    assert r.code == 0, r.out + r.err
    assert "ML_EVALUATION_THRESHOLDS_MET" in vsa_levels(json.loads(r.out), gate_keys)
    assert alias_version(server, model) == version


def test_forged_metrics_registered_as_evidence_are_refused(
    evidence, cli, server, model, gate_keys
) -> None:
    """Better numbers than evaluate recorded: the digest differs from the signed link's."""
    recorded = hashlib.sha256(Path("metrics/metrics.json").read_bytes()).hexdigest()
    Path("metrics/metrics.json").write_text('{"accuracy": 0.999, "test_examples": 359}\n')
    version = register(cli, server, model)
    r = promote(cli, server, model, version, gate_keys, "--json")
    assert r.code == 1
    failure = json.loads(r.out)["verification"]["failures"][0]
    assert failure["phase"] == "thresholds" and failure["expected"] == recorded
    assert (
        "metrics file 'metrics/metrics.json' is not the one the chain recorded"
        in (failure["message"])
    )
    assert alias_version(server, model) is None
    assert decision(server, model, version, gate_keys).result == "FAILED"


def test_register_refuses_evidence_outside_the_project(evidence, cli, server, model, tmp_path):
    outside = tmp_path / "metrics.json"
    outside.write_text("{}")
    r = cli("register", model, "models", "--evidence", str(outside), "--tracking-uri", server.uri)
    assert r.code == 2 and "must be inside the current directory" in r.err
    from mlflow.exceptions import MlflowException

    with pytest.raises(MlflowException):
        client(server).get_registered_model(model)


def test_plugin_fails_closed_on_bad_configuration_and_caps_the_rehash(
    evidence, cli, model, gate_keys, tmp_path
) -> None:
    """An empty protected-alias list keeps the defaults (and the log says so); a version larger
    than the re-hash cap is refused with a reason, not copied or hashed, and the alias stays."""
    srv = MlflowServer(
        tmp_path / "mlflow-capped",
        "provenance-sqlite",
        {
            "PROVENANCE_GATE_PUBLIC_KEY": str(gate_keys / "gate.pub"),
            "PROVENANCE_PROTECTED_ALIASES": "",
            "PROVENANCE_REHASH_MAX_BYTES": "64",
        },
    ).start()
    try:
        log = (srv.root / "server.log").read_text()
        assert "PROVENANCE_PROTECTED_ALIASES='' is empty or malformed" in log
        assert "protecting aliases champion, production" in log
        version = register(cli, srv, model)
        r = promote(cli, srv, model, version, gate_keys)
        assert r.code == 1 and "over the re-hash cap of 64" in (r.out + r.err), r.out + r.err
        assert alias_version(srv, model) is None
        assert "ml-provenance gate refused" in (srv.root / "server.log").read_text()
    finally:
        srv.stop()


def _vsa_predicate(server: MlflowServer, model: str, version: str) -> dict:
    envelope = json.loads(tags(server, model, version)["provenance.vsa.champion"])
    return json.loads(base64.b64decode(envelope["payload"]))["predicate"]


def _attest_and_promote(cli, server, model, gate_keys, repository: str, *extra: str):  # type: ignore[no-untyped-def]
    """Key-signed provenance claiming `repository`, then promote checking it against the
    expected github.com/example/digits; returns (promote result, version)."""
    r = cli(
        "slsa", "attest", "--subject", "models/**", "--layout", "root.layout",
        "--layout-key", "keys/owner.pub", "--key", "keys/trainer", "-o", "model.intoto.jsonl",
        "--repository", repository, "--ref", "refs/heads/main",
    )  # fmt: skip
    assert r.code == 0, r.err
    version = register(cli, server, model)
    r = promote(
        cli, server, model, version, gate_keys, "--provenance", "model.intoto.jsonl",
        "--source-uri", "github.com/example/digits", "--provenance-key", "keys/trainer.pub",
        *extra,
    )  # fmt: skip
    return r, version


def test_slsa_provenance_is_read_once_and_its_verified_bytes_are_signed(
    evidence, cli, server, model, gate_keys
) -> None:
    """The VSA names the provenance by the digest of the bytes verified, at the level its
    signer supports: a key proves who signed, not an isolated builder (Build L1)."""
    r, version = _attest_and_promote(
        cli, server, model, gate_keys, "https://github.com/example/digits", "--json"
    )
    assert r.code == 0, r.out + r.err
    predicate = _vsa_predicate(server, model, version)
    digest = hashlib.sha256(Path("model.intoto.jsonl").read_bytes()).hexdigest()
    assert {"uri": "model.intoto.jsonl", "digest": {"sha256": digest}} in [
        {"uri": a["uri"], "digest": a["digest"]} for a in predicate["inputAttestations"]
    ]
    assert "SLSA_BUILD_LEVEL_1" in predicate["verifiedLevels"]
    assert not {"SLSA_BUILD_LEVEL_2", "SLSA_BUILD_LEVEL_3"} & set(predicate["verifiedLevels"])


def test_slsa_provenance_claiming_another_source_is_refused_and_no_level_recorded(
    evidence, cli, server, model, gate_keys
) -> None:
    r, version = _attest_and_promote(
        cli, server, model, gate_keys, "https://github.com/attacker/digits"
    )
    assert r.code == 1 and "source repository (claimed by the key holder)" in r.out, r.out
    assert alias_version(server, model) is None
    predicate = _vsa_predicate(server, model, version)
    assert predicate["verificationResult"] == "FAILED"
    assert not any(level.startswith("SLSA_BUILD") for level in predicate["verifiedLevels"])


def test_the_mlflow_registry_searches_versions_newest_first_and_by_run(
    evidence, cli, server, model
) -> None:
    from provenance.errors import UsageError
    from provenance.gate import resolve

    first, second = register(cli, server, model), register(cli, server, model)
    registry, ref = resolve(f"models:/{model}/{second}", location=server.uri)
    assert (ref.name, ref.version, ref.alias) == (model, second, None)
    found = registry.search_versions(model)
    assert [v.version for v in found] == [second, first]
    run = found[1].run_id
    assert run and [v.version for v in registry.search_versions(model, run_id=run)] == [first]
    assert registry.search_versions(model + "-none") == []
    with pytest.raises(UsageError, match="quotes"):
        registry.search_versions("x' or name != '")
