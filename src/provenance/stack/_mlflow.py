"""`mlflow server` for the stack.

PostgreSQL stores, the gate's registry plugin, S3 artifacts, basic auth, two workers.

Store URIs carry the database password, so they reach the server through its environment
(MLFLOW_BACKEND_STORE_URI / MLFLOW_REGISTRY_STORE_URI, the documented equivalents of
--backend-store-uri / --registry-store-uri) and never appear in the process list.

Users: `admin` (bootstrap), `provenance-gate` (the gate's service account) and `engineer`. The
auth app's default permission is EDIT, so both non-admin users have EDIT on every registered
model and experiment, including ones the other created (a creator also gets MANAGE on its own).
"""

from __future__ import annotations

import base64
import json
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from provenance import _config
from provenance.errors import ComponentError
from provenance.signing import write_atomic
from provenance.stack import _postgres, _proc, _s3
from provenance.stack._proc import HOST, Proc
from provenance.stack._state import State

NAME = "mlflow"
WORKERS = 2
ADMIN = "admin"
GATE_USER = "provenance-gate"
ENGINEER = "engineer"
DEFAULT_PERMISSION = "EDIT"
ARTIFACT_PREFIX = "artifacts"


def tracking_uri(port: int) -> str:
    return f"http://{HOST}:{port}"


def store_uri(pg_port: int, password: str | None, database: str = _postgres.DATABASE) -> str:
    """postgresql:// URI of an MLflow database; without password for display."""
    cred = _postgres.USER if password is None else f"{_postgres.USER}:{password}"
    return f"postgresql://{cred}@{HOST}:{pg_port}/{database}"


def artifacts_destination() -> str:
    return f"s3://{_s3.BUCKET}/{ARTIFACT_PREFIX}"


def _write_auth_config(state: State, pg_port: int, sec: dict[str, str]) -> Path:
    path = state.path("mlflow", "basic_auth.ini")
    db = store_uri(pg_port, sec["postgres_password"], _postgres.AUTH_DATABASE)
    text = (
        "[mlflow]\n"
        f"default_permission = {DEFAULT_PERMISSION}\n"
        f"database_uri = {db}\n"
        f"admin_username = {ADMIN}\n"
        f"admin_password = {sec['mlflow_admin_password']}\n"
        "authorization_function = mlflow.server.auth:authenticate_request_basic_auth\n"
        # A password hash check costs ~0.5 s of CPU: cache successful checks per worker for a
        # minute (a changed password may be accepted by another worker until then).
        "auth_cache_ttl_seconds = 60\n"
    )
    write_atomic(path, text.encode(), mode=0o600)
    return path


def server_env(
    state: State, pg_port: int, s3_ports: dict[str, int], sec: dict[str, str]
) -> dict[str, str]:
    """The server's environment: the caller's, minus any MLflow/AWS/provenance settings."""
    base = _config.environment_copy(
        lambda k: not k.startswith(("MLFLOW_", "AWS_", "PROVENANCE_", "_MLFLOW"))
    )
    return {
        **base,
        "MLFLOW_BACKEND_STORE_URI": store_uri(pg_port, sec["postgres_password"]),
        "MLFLOW_REGISTRY_STORE_URI": "provenance-" + store_uri(pg_port, sec["postgres_password"]),
        "MLFLOW_AUTH_CONFIG_PATH": str(_write_auth_config(state, pg_port, sec)),
        "MLFLOW_FLASK_SERVER_SECRET_KEY": sec["mlflow_flask_secret_key"],
        "MLFLOW_DISABLE_TELEMETRY": "true",
        "DO_NOT_TRACK": "true",
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
        "MLFLOW_S3_ENDPOINT_URL": _s3.endpoint(s3_ports),
        "AWS_ACCESS_KEY_ID": sec["s3_server_access_key"],
        "AWS_SECRET_ACCESS_KEY": sec["s3_server_secret_key"],
        "AWS_DEFAULT_REGION": _s3.REGION,
        "PROVENANCE_GATE_PUBLIC_KEY": state.gate_public_key,
    }


def start(
    state: State, port: int, pg_port: int, s3_ports: dict[str, int], sec: dict[str, str]
) -> Proc:
    argv = [
        sys.executable,
        "-m",
        "mlflow",
        "server",
        "--host",
        HOST,
        "--port",
        str(port),
        "--workers",
        str(WORKERS),
        "--app-name",
        "basic-auth",
        "--artifacts-destination",
        artifacts_destination(),
    ]
    work = state.path("mlflow")
    work.mkdir(parents=True, exist_ok=True)
    env = server_env(state, pg_port, s3_ports, sec)
    return _proc.spawn(argv, env=env, log=state.path("logs", "mlflow.log"), cwd=work)


def _request(
    url: str, user: str | None, password: str | None, body: dict[str, Any] | None = None
) -> tuple[int, bytes]:
    """One HTTP call (POST with a JSON body, else GET): status and body.

    Never raises for an HTTP error status.
    """
    data = json.dumps(body).encode() if body is not None else None
    if not url.startswith(("http://", "https://")):
        raise OSError(f"not an http(s) URL: {url}")
    method = "POST" if data is not None else "GET"
    req = urllib.request.Request(url, data=data, method=method)  # noqa: S310 - checked above
    if data is not None:
        req.add_header("Content-Type", "application/json")
    if user is not None and password is not None:
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        req.add_header("Authorization", f"Basic {token}")
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:  # noqa: S310 - http(s) URL we built
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_ready(proc: Proc, port: int, timeout: float, admin_password: str | None = None) -> None:
    """Wait until the server answers, every worker of it.

    /health, then (with the admin password) an authenticated API call through the database
    several times in a row, so that the first client request does not meet a worker still
    starting (503).
    """
    deadline = time.monotonic() + timeout
    last = "no answer"
    streak = 0
    while time.monotonic() < deadline:
        if not _proc.is_alive(proc):
            raise ComponentError(NAME, "the server exited while starting")
        try:
            status, _ = _request(f"{tracking_uri(port)}/health", None, None)
            if status == 200 and admin_password is not None:
                status, _ = _request(
                    f"{tracking_uri(port)}/api/2.0/mlflow/experiments/search?max_results=1",
                    ADMIN,
                    admin_password,
                )
            streak = streak + 1 if status == 200 else 0
            if streak >= (1 if admin_password is None else 4):
                return
            last = f"HTTP {status}"
        except OSError as exc:
            streak, last = 0, str(exc)
        time.sleep(0.25 if streak else 0.5)
    raise ComponentError(NAME, f"not healthy after {timeout:.0f} s ({last})")


def ensure_users(port: int, sec: dict[str, str]) -> None:
    """Create the gate's and the engineer's accounts through the auth REST API (idempotent)."""
    base = tracking_uri(port)
    admin_pw = sec["mlflow_admin_password"]
    for user, password in ((GATE_USER, sec["gate_password"]), (ENGINEER, sec["engineer_password"])):
        status, body = _request(f"{base}/api/2.0/mlflow/users/get?username={user}", ADMIN, admin_pw)
        if status == 200:
            continue
        status, body = _request(
            f"{base}/api/2.0/mlflow/users/create",
            ADMIN,
            admin_pw,
            {"username": user, "password": password},
        )
        if status != 200 and b"RESOURCE_ALREADY_EXISTS" not in body:
            raise ComponentError(
                NAME,
                f"cannot create user '{user}': HTTP {status} {body[:200].decode(errors='replace')}",
            )


def stop(proc: Proc) -> bool:
    return _proc.stop(proc, timeout=20)
