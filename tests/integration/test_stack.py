"""`provenance stack` against the real components it starts (PostgreSQL, SeaweedFS S3, MLflow with
basic auth and the gate's registry plugin), started once per session by tests/stack_fixture.py.

Permission tests use raw HTTP (urllib), not the MLflow client: what an EDIT user can do over
the REST API is what matters on a shared server. Tests that break a component run last and
repair the stack before they end.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import stat
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.stack_fixture import Stack, assert_all_gone, port_open, provenance, session_pids

pytestmark = pytest.mark.stack


def http(
    stack: Stack,
    method: str,
    path: str,
    auth: tuple[str, str] | None,
    body: dict[str, Any] | None = None,
) -> tuple[int, dict[str, Any]]:
    """One raw REST call to the stack's MLflow; returns status and the decoded JSON body."""
    url = stack.doc["tracking_uri"] + path
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    if auth is not None:
        token = base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            status, raw = resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    try:
        return status, json.loads(raw or b"{}")
    except ValueError:
        return status, {"raw": raw.decode(errors="replace")}


def creds(env: dict[str, str]) -> tuple[str, str]:
    return env["MLFLOW_TRACKING_USERNAME"], env["MLFLOW_TRACKING_PASSWORD"]


def s3_client(stack: Stack) -> Any:
    import boto3
    from botocore.config import Config

    env = stack.env
    return boto3.client(
        "s3",
        endpoint_url=stack.doc["s3_endpoint"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
        config=Config(s3={"addressing_style": "path"}),
    )


def object_of_run(stack: Stack, run_id: str) -> bytes:
    """The bytes of the one weight file logged by `run_id`, read from the bucket (gate's key)."""
    s3 = s3_client(stack)
    listing = s3.list_objects_v2(Bucket="mlflow", Prefix="artifacts/").get("Contents", [])
    keys = [
        o["Key"] for o in listing if run_id in o["Key"] and o["Key"].endswith("model/weights.bin")
    ]
    assert len(keys) == 1, keys
    return bytes(s3.get_object(Bucket="mlflow", Key=keys[0])["Body"].read())


def gate_model_with_files(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> dict[str, str]:
    """As the gate's account (MLflow client, the stack's env): a run with a logged weight file,
    a registered model and version 1 whose source is that run's `model/` folder."""
    from mlflow import MlflowClient

    for key, value in stack.env.items():
        monkeypatch.setenv(key, value)
    client = MlflowClient(tracking_uri=stack.doc["tracking_uri"])
    tag = uuid.uuid4().hex[:10]
    exp = client.create_experiment(f"stack-test-{tag}")
    run = client.create_run(exp)
    weights = tmp_path / "model" / "weights.bin"
    weights.parent.mkdir(parents=True)
    payload = f"weights {tag}".encode()
    weights.write_bytes(payload)
    client.log_artifacts(run.info.run_id, str(weights.parent), artifact_path="model")
    client.set_terminated(run.info.run_id)
    name = f"model-{tag}"
    client.create_registered_model(name)
    source = f"{run.info.artifact_uri}/model"
    mv = client.create_model_version(name, source, run_id=run.info.run_id)
    return {
        "name": name,
        "version": str(mv.version),
        "run_id": run.info.run_id,
        "source": source,
        "experiment_id": exp,
        "payload": payload.decode(),
    }


def assert_one_line_error(r: Any, component: str, *fragments: str) -> None:
    assert r.returncode == 4, (r.returncode, r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert lines[0].startswith(f"error: {component}: "), lines[0]
    assert "Traceback" not in r.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


# --- up / status / idempotence / refusal ------------------------------------------------------


def test_up_prints_one_document_with_uris_env_pids_ports(stack: Stack) -> None:
    doc = stack.doc
    assert doc["tracking_uri"].startswith("http://127.0.0.1:")
    assert doc["backend_store_uri"].startswith("postgresql://mlflow@127.0.0.1:")
    assert doc["registry_store_uri"].startswith("provenance-postgresql://")
    assert doc["artifacts_destination"] == "s3://mlflow/artifacts"
    assert doc["s3_endpoint"].startswith("http://127.0.0.1:")
    for env in (doc["env"], doc["engineer_env"]):
        assert set(env) >= {
            "MLFLOW_TRACKING_URI",
            "MLFLOW_TRACKING_USERNAME",
            "MLFLOW_TRACKING_PASSWORD",
            "MLFLOW_S3_ENDPOINT_URL",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_DEFAULT_REGION",
        }
    assert doc["env"]["MLFLOW_TRACKING_USERNAME"] == "provenance-gate"
    assert doc["engineer_env"]["MLFLOW_TRACKING_USERNAME"] == "engineer"
    assert doc["env"]["AWS_ACCESS_KEY_ID"] != doc["engineer_env"]["AWS_ACCESS_KEY_ID"]
    assert doc["components"] == dict.fromkeys(("postgresql", "s3", "mlflow"), "running")
    for name, pid in doc["pids"].items():
        assert session_pids(pid), f"{name} (pid {pid}) not running"
    for port in (p for ports in doc["ports"].values() for p in ports.values()):
        assert port_open(port), port
    # Everything listens on loopback only: nothing of ours on another address.
    import psutil

    ours = {p for pid in doc["pids"].values() for p in session_pids(pid)}
    for conn in psutil.net_connections(kind="tcp"):
        if conn.status == psutil.CONN_LISTEN and conn.pid in ours:
            assert conn.laddr.ip == "127.0.0.1", conn
    # The marker, the state and every secret are private to the owner.
    for path in (
        stack.dir / "stack.json",
        stack.dir / "secrets.json",
        Path(doc["gate_private_key"]),
    ):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    assert json.loads((stack.dir / "stack.json").read_text())["marker"]
    assert Path(doc["gate_public_key"]).is_file()


def test_up_again_on_a_running_stack_changes_nothing(stack: Stack) -> None:
    before = stack.refresh()
    t0 = time.monotonic()
    r = provenance("stack", "up", "--dir", str(stack.dir), "--json")
    assert r.returncode == 0, r.stderr
    assert time.monotonic() - t0 < 30
    again = json.loads(r.stdout)
    assert again.pop("startup_seconds") == dict.fromkeys(("postgresql", "s3", "mlflow"), 0.0)
    before.pop("ok", None)
    assert again == before


@pytest.mark.parametrize("content", ["notes.txt", "stack.json"])
def test_up_refuses_a_directory_it_did_not_create(tmp_path: Path, content: str) -> None:
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / content).write_text('{"components": {}}' if content == "stack.json" else "mine\n")
    before = {p.name: p.read_bytes() for p in foreign.iterdir()}
    r = provenance("stack", "up", "--dir", str(foreign), "--json", timeout=60)
    assert r.returncode == 2, r.stderr
    assert "refusing" in r.stderr and str(foreign) in r.stderr
    assert json.loads(r.stdout)["exit_code"] == 2  # --json: the error as one document
    assert {p.name: p.read_bytes() for p in foreign.iterdir()} == before
    down = provenance("stack", "down", "--dir", str(foreign), timeout=60)
    assert down.returncode == 2
    assert {p.name: p.read_bytes() for p in foreign.iterdir()} == before


def test_status_says_running_and_exits_0(stack: Stack) -> None:
    r = provenance("stack", "status", "--dir", str(stack.dir), "--json", timeout=60)
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["ok"] is True
    assert doc["components"] == dict.fromkeys(("postgresql", "s3", "mlflow"), "running")


def test_up_with_an_unusable_gate_key_starts_nothing(tmp_path: Path) -> None:
    bad = tmp_path / "gate.pub"
    bad.write_text("not a key\n")
    target = tmp_path / "new-stack"
    r = provenance("stack", "up", "--dir", str(target), "--gate-pub-key", str(bad), timeout=60)
    assert r.returncode == 3, r.stderr
    assert str(bad) in r.stderr and "Traceback" not in r.stderr
    assert not target.exists()


# --- process identity: only what the stack started is ever signalled --------------------------


def test_stop_never_signals_a_reused_pid(tmp_path: Path) -> None:
    """A recorded PID whose start time or command line differ is someone else's process."""
    import dataclasses

    from provenance.stack import _proc

    real = _proc.spawn(
        ["sleep", "60"], env={"PATH": os.environ["PATH"]}, log=tmp_path / "log", cwd=tmp_path
    )
    try:
        assert real.start, "the kernel's start time is recorded"
        assert _proc.Proc.from_dict(real.to_dict()) == real
        with pytest.raises(ValueError, match="start"):
            _proc.Proc.from_dict({**real.to_dict(), "start": 5})
        assert _proc.is_alive(real)
        assert _proc.members(real) == [real.pid]
        # A clock adjustment moves psutil's wall-clock start time, not the process's identity.
        assert _proc.is_alive(dataclasses.replace(real, create_time=real.create_time + 1.0))
        boot, ticks = real.start.rsplit(":", 1)
        for impostor in (
            dataclasses.replace(real, start=f"{boot}:{int(ticks) + 1}"),
            dataclasses.replace(real, start=f"{'0' * len(boot)}:{ticks}"),  # another boot
            dataclasses.replace(real, start="", create_time=real.create_time - 3600),
            dataclasses.replace(real, cmdline=("sleep", "61")),
        ):
            assert not _proc.is_alive(impostor)
            assert _proc.members(impostor) == []
            assert _proc.stop(impostor, timeout=1) is True
            assert _proc.is_alive(real), "a process that was not ours got signalled"
    finally:
        assert _proc.stop(real, timeout=5)
    assert not _proc.is_alive(real)
    assert not session_pids(real.pid)


def test_a_freshly_spawned_process_is_recognised_at_once(tmp_path: Path) -> None:
    """spawn returns only after exec has finished: an identity check made right away (while
    the kernel could still be setting up the new program's arguments) sees our own process."""
    from provenance.stack import _proc

    spawned = []
    try:
        for _ in range(100):
            p = _proc.spawn(
                ["sleep", "60"],
                env={"PATH": os.environ["PATH"]},
                log=tmp_path / "log",
                cwd=tmp_path,
            )
            spawned.append(p)
            assert Path(f"/proc/{p.pid}/cmdline").read_bytes() == b"sleep\x0060\x00"
            assert _proc.is_alive(p)
    finally:
        for p in spawned:
            assert _proc.stop(p, timeout=5)


def test_postgres_binaries_are_runnable_by_the_server_user(tmp_path: Path) -> None:
    """As root the server runs as `nobody`: a wheel inside an untraversable folder is copied
    into D, keeping its layout; otherwise the binaries are used where they are."""
    import shutil
    import subprocess

    from provenance.stack import _postgres

    wheel_bin = _postgres.binaries()
    if wheel_bin.parent.name != "pginstall":  # a system PostgreSQL (no wheel for this Python)
        assert _postgres.runnable_binaries(tmp_path, wheel_bin) == wheel_bin
        return
    site = wheel_bin.parents[2]
    hidden = tmp_path / "hidden"
    hidden.mkdir(mode=0o700)
    shutil.copytree(site / "pgserver", hidden / "pgserver", symlinks=True)
    shutil.copytree(site / "pgserver.libs", hidden / "pgserver.libs", symlinks=True)
    root = Path(tempfile.mkdtemp(prefix="provenance-pgbin-"))
    try:
        root.chmod(0o711)
        d = root / "D"
        d.mkdir(mode=0o711)
        got = _postgres.runnable_binaries(d, hidden / "pgserver" / "pginstall" / "bin")
        if os.geteuid() != 0:
            assert got == hidden / "pgserver" / "pginstall" / "bin"
            return
        assert got.is_relative_to(d)
        for exe in ("postgres", "initdb"):
            r = subprocess.run(
                [str(got / exe), "--version"],
                user="nobody",
                capture_output=True,
                text=True,
                check=False,
            )
            assert r.returncode == 0 and "PostgreSQL" in r.stdout, (exe, r.stderr)
    finally:
        shutil.rmtree(root, ignore_errors=True)


# --- what the gate's account and the engineer can do ------------------------------------------


def test_gate_account_registers_a_version_whose_files_are_in_the_bucket(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    model = gate_model_with_files(stack, monkeypatch, tmp_path)
    assert object_of_run(stack, model["run_id"]) == model["payload"].encode()
    status, got = http(
        stack,
        "GET",
        f"/api/2.0/mlflow/model-versions/get?name={model['name']}&version=1",
        creds(stack.env),
    )
    assert status == 200, got
    assert got["model_version"]["source"] == model["source"]


def test_engineer_with_edit_creates_and_reads_versions_over_raw_http(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    model = gate_model_with_files(stack, monkeypatch, tmp_path)
    engineer = creds(stack.engineer_env)
    status, got = http(
        stack,
        "POST",
        "/api/2.0/mlflow/model-versions/create",
        engineer,
        {"name": model["name"], "source": model["source"], "run_id": model["run_id"]},
    )
    assert status == 200, got
    assert got["model_version"]["version"] == "2"
    status, got = http(
        stack, "GET", f"/api/2.0/mlflow/registered-models/get?name={model['name']}", engineer
    )
    assert status == 200, got
    assert got["registered_model"]["name"] == model["name"]


@pytest.mark.parametrize("who", ["anonymous", "wrong password", "unknown user"])
def test_requests_without_valid_credentials_get_401(stack: Stack, who: str) -> None:
    user, password = creds(stack.engineer_env)
    auth = {
        "anonymous": None,
        "wrong password": (user, password + "x"),
        "unknown user": ("mallory", password),
    }[who]
    for method, path, body in (
        ("GET", "/api/2.0/mlflow/registered-models/search?max_results=1", None),
        ("POST", "/api/2.0/mlflow/registered-models/create", {"name": f"x-{uuid.uuid4().hex}"}),
    ):
        status, _ = http(stack, method, path, auth, body)
        assert status == 401, (who, method, path, status)
    status, got = http(
        stack, "GET", "/api/2.0/mlflow/registered-models/search?max_results=1000", creds(stack.env)
    )
    assert status == 200
    assert not [m for m in got.get("registered_models", []) if m["name"].startswith("x-")]


def test_engineer_cannot_set_champion_the_plugin_refuses_it(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    model = gate_model_with_files(stack, monkeypatch, tmp_path)
    engineer = creds(stack.engineer_env)
    # EDIT really is enough for an unprotected alias: the refusal below is the plugin's.
    status, got = http(
        stack,
        "POST",
        "/api/2.0/mlflow/registered-models/alias",
        engineer,
        {"name": model["name"], "alias": "staging", "version": model["version"]},
    )
    assert status == 200, got
    status, got = http(
        stack,
        "POST",
        "/api/2.0/mlflow/registered-models/alias",
        engineer,
        {"name": model["name"], "alias": "champion", "version": model["version"]},
    )
    assert status == 403, (status, got)
    assert got["error_code"] == "PERMISSION_DENIED"
    assert "ml-provenance gate" in got["message"]
    status, got = http(
        stack, "GET", f"/api/2.0/mlflow/registered-models/get?name={model['name']}", engineer
    )
    assert status == 200
    aliases = {a["alias"]: a["version"] for a in got["registered_model"].get("aliases", [])}
    assert aliases == {"staging": model["version"]}
    # The legacy route to production, the stage transition, is refused the same way.
    status, got = http(
        stack,
        "POST",
        "/api/2.0/mlflow/model-versions/transition-stage",
        engineer,
        {
            "name": model["name"],
            "version": model["version"],
            "stage": "Production",
            "archive_existing_versions": False,
        },
    )
    assert status == 403, (status, got)
    assert "ml-provenance gate" in got["message"]
    status, got = http(
        stack,
        "GET",
        f"/api/2.0/mlflow/model-versions/get?name={model['name']}&version={model['version']}",
        engineer,
    )
    assert status == 200
    assert got["model_version"]["current_stage"] == "None"


# --- client-side checks: one line naming the component, exit 4 --------------------------------


def check(*args: str, env: dict[str, str]) -> Any:
    import subprocess

    from tests.conftest import BIN
    from tests.stack_fixture import client_env

    return subprocess.run(
        [str(BIN / "provenance"), "stack", "check", *args],
        capture_output=True,
        text=True,
        env=client_env(env),
        timeout=120,
        check=False,
    )


def pg_uri(stack: Stack, password: str | None = None, port: int | None = None) -> str:
    secrets = json.loads((stack.dir / "secrets.json").read_text())
    pw = password if password is not None else secrets["postgres_password"]
    port = port or stack.doc["ports"]["postgresql"]["postgresql"]
    return f"postgresql://mlflow:{pw}@127.0.0.1:{port}/mlflow"


def closed_port() -> int:
    from provenance.stack._proc import free_ports

    return free_ports(1)[0]


def test_check_passes_on_the_running_stack(stack: Stack) -> None:
    r = check("--dir", str(stack.dir), "--json", env={})
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout)["components"] == {
        n: {"ok": True, "error": None} for n in ("postgresql", "s3", "mlflow")
    }
    env = {**stack.env, "MLFLOW_BACKEND_STORE_URI": pg_uri(stack), "PROVENANCE_S3_BUCKET": "mlflow"}
    r = check(env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["postgresql", "ok", "s3", "ok", "mlflow", "ok"]


def test_check_wrong_mlflow_password(stack: Stack) -> None:
    env = {**stack.env, "MLFLOW_TRACKING_PASSWORD": "wrong"}
    r = check(env=env)
    assert_one_line_error(r, "mlflow", "refused the credentials", "provenance-gate", "401")


def test_check_mlflow_unreachable(stack: Stack) -> None:
    env = {**stack.env, "MLFLOW_TRACKING_URI": f"http://127.0.0.1:{closed_port()}"}
    r = check(env=env)
    assert_one_line_error(r, "mlflow", "unreachable")


def test_check_wrong_s3_secret(stack: Stack) -> None:
    env = {**stack.env, "AWS_SECRET_ACCESS_KEY": "wrong", "PROVENANCE_S3_BUCKET": "mlflow"}
    env.pop("MLFLOW_TRACKING_URI")
    r = check(env=env)
    assert_one_line_error(r, "s3", "refused the credentials", env["AWS_ACCESS_KEY_ID"])


def test_check_bucket_missing(stack: Stack) -> None:
    secrets = json.loads((stack.dir / "secrets.json").read_text())
    env = {**stack.env, "PROVENANCE_S3_BUCKET": "no-such-bucket"}
    env.pop("MLFLOW_TRACKING_URI")
    # The server's identity may list every bucket: S3 says the bucket does not exist.
    admin = {
        **env,
        "AWS_ACCESS_KEY_ID": secrets["s3_server_access_key"],
        "AWS_SECRET_ACCESS_KEY": secrets["s3_server_secret_key"],
    }
    assert_one_line_error(check(env=admin), "s3", "bucket 'no-such-bucket' does not exist")
    # The gate's identity is scoped to its bucket: S3 cannot tell it more than "no access".
    assert_one_line_error(
        check(env=env), "s3", "may not list bucket 'no-such-bucket'", "does not exist or"
    )


def test_check_s3_unreachable(stack: Stack) -> None:
    env = {**stack.env, "PROVENANCE_S3_BUCKET": "mlflow"}
    env["MLFLOW_S3_ENDPOINT_URL"] = f"http://127.0.0.1:{closed_port()}"
    env.pop("MLFLOW_TRACKING_URI")
    r = check(env=env)
    assert_one_line_error(r, "s3", "unreachable")


def test_check_postgres_refusing_connections(stack: Stack) -> None:
    r = check(env={"MLFLOW_BACKEND_STORE_URI": pg_uri(stack, port=closed_port())})
    assert_one_line_error(r, "postgresql", "connection refused")


def test_check_postgres_wrong_password(stack: Stack) -> None:
    r = check(env={"MLFLOW_BACKEND_STORE_URI": pg_uri(stack, password="wrong")})
    assert_one_line_error(r, "postgresql", "wrong password for user 'mlflow'")


def test_check_with_nothing_configured_is_a_usage_error() -> None:
    r = check(env={})
    assert r.returncode == 2, r.stderr
    assert "nothing to check" in r.stderr


# --- crashes, failed restarts, down (these break the stack and repair it) ---------------------


def test_a_killed_component_is_reported_crashed_and_up_restarts_only_it(stack: Stack) -> None:
    doc = stack.refresh()
    pids = dict(doc["pids"])
    os.kill(pids["s3"], signal.SIGKILL)
    deadline = time.monotonic() + 10
    while session_pids(pids["s3"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    r = provenance("stack", "status", "--dir", str(stack.dir), "--json", timeout=60)
    assert r.returncode == 1
    assert json.loads(r.stdout)["components"] == {
        "postgresql": "running",
        "s3": "crashed",
        "mlflow": "running",
    }
    text = provenance("stack", "status", "--dir", str(stack.dir), timeout=60)
    assert text.returncode == 1 and "s3          crashed" in text.stdout
    r = provenance("stack", "up", "--dir", str(stack.dir), "--json")
    assert r.returncode == 0, r.stderr
    after = json.loads(r.stdout)
    assert after["pids"]["postgresql"] == pids["postgresql"]
    assert after["pids"]["mlflow"] == pids["mlflow"]
    assert after["pids"]["s3"] != pids["s3"]
    assert after["ports"] == doc["ports"]
    assert after["components"] == dict.fromkeys(("postgresql", "s3", "mlflow"), "running")
    assert check("--dir", str(stack.dir), env={}).returncode == 0


def test_a_component_that_fails_to_start_exits_4_with_its_log_tail(stack: Stack) -> None:
    doc = stack.refresh()
    pg_pid = doc["pids"]["postgresql"]
    conf = stack.dir / "postgresql" / "data" / "postgresql.conf"
    original = conf.read_bytes()
    os.kill(pg_pid, signal.SIGKILL)
    try:
        conf.write_bytes(original + b"\nshared_buffers = 'plenty'\n")
        r = provenance("stack", "up", "--dir", str(stack.dir), "--json")
        assert r.returncode == 4, r.stderr
        assert json.loads(r.stdout)["error"]["message"].startswith("postgresql: ")
        first = r.stderr.splitlines()[0]
        assert first.startswith("error: postgresql: "), r.stderr
        assert "postgresql.log" in r.stderr and "shared_buffers" in r.stderr
        assert "Traceback" not in r.stderr
        # What this `up` started is stopped again; the other components were left running.
        assert not session_pids(pg_pid)
        status = json.loads(provenance("stack", "status", "--dir", str(stack.dir), "--json").stdout)
        assert status["components"]["postgresql"] == "stopped"
        assert status["pids"]["postgresql"] is None
        assert status["components"]["mlflow"] == "running"
    finally:
        conf.write_bytes(original)
    r = provenance("stack", "up", "--dir", str(stack.dir), "--json")
    assert r.returncode == 0, r.stderr
    assert check("--dir", str(stack.dir), env={}).returncode == 0


def test_down_stops_every_process_and_port_and_up_keeps_the_data(
    stack: Stack, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    model = gate_model_with_files(stack, monkeypatch, tmp_path)
    doc = stack.refresh()
    r = provenance("stack", "down", "--dir", str(stack.dir), timeout=120)
    assert r.returncode == 0, r.stderr
    assert_all_gone(doc)
    r = provenance("stack", "status", "--dir", str(stack.dir), "--json", timeout=60)
    assert r.returncode == 1
    assert json.loads(r.stdout)["components"] == dict.fromkeys(
        ("postgresql", "s3", "mlflow"), "stopped"
    )
    assert (stack.dir / "postgresql" / "data" / "PG_VERSION").is_file()
    r = provenance("stack", "up", "--dir", str(stack.dir), "--json")
    assert r.returncode == 0, r.stderr
    stack.doc = json.loads(r.stdout)
    status, got = http(
        stack,
        "GET",
        f"/api/2.0/mlflow/model-versions/get?name={model['name']}&version=1",
        creds(stack.env),
    )
    assert status == 200, got
    assert object_of_run(stack, model["run_id"]) == model["payload"].encode()
