"""The local production-like stack, started ONCE per test session with the real command.

`provenance stack up --dir D --json` starts PostgreSQL, the S3 store and `mlflow server` (basic
auth, the gate's registry plugin); teardown runs `provenance stack down` and asserts that no
process of the stack is left and that every port it used is closed.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.conftest import BIN

UP_TIMEOUT = 600


def client_env(extra: dict[str, str] | None = None) -> dict[str, str]:
    """The caller's environment without MLflow/AWS/provenance settings, plus `extra`."""
    env = {
        k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "AWS_", "PROVENANCE_"))
    }
    env["CI"] = "true"
    return {**env, **(extra or {})}


def provenance(*args: str, timeout: float = UP_TIMEOUT) -> subprocess.CompletedProcess[str]:
    """Run the installed `provenance` console script (the real entry point)."""
    return subprocess.run(
        [str(BIN / "provenance"), *args],
        capture_output=True,
        text=True,
        env=client_env(),
        timeout=timeout,
        check=False,
    )


def session_pids(leader: int) -> list[int]:
    """Live processes in the session the stack started a component in (leader + children)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if os.getsid(proc.pid) == leader and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc.pid)
        except (OSError, psutil.Error):
            continue
    return found


def all_ports(doc: dict[str, Any]) -> list[int]:
    return [p for ports in doc["ports"].values() for p in ports.values()]


def port_open(port: int) -> bool:
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def assert_all_gone(doc: dict[str, Any], timeout: float = 10) -> None:
    """No process of the stack's sessions is left and none of its ports accepts connections."""
    deadline = time.monotonic() + timeout
    while True:
        left = {n: session_pids(pid) for n, pid in doc["pids"].items() if pid}
        left = {n: pids for n, pids in left.items() if pids}
        open_ports = [p for p in all_ports(doc) if port_open(p)]
        if not left and not open_ports:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"left after down: processes {left}, open ports {open_ports}")
        time.sleep(0.2)


@dataclass
class Stack:
    root: Path  # world-traversable parent (PostgreSQL runs as `nobody` under root)
    dir: Path
    doc: dict[str, Any]
    up_seconds: float

    @property
    def env(self) -> dict[str, str]:
        return dict(self.doc["env"])

    @property
    def engineer_env(self) -> dict[str, str]:
        return dict(self.doc["engineer_env"])

    def refresh(self) -> dict[str, Any]:
        """Re-read the document (after a component was restarted)."""
        r = provenance("stack", "status", "--dir", str(self.dir), "--json")
        self.doc = json.loads(r.stdout)
        return self.doc


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    with running_stack("provenance-stack-") as running:
        yield running


@contextlib.contextmanager
def running_stack(prefix: str) -> Iterator[Stack]:
    """`stack up` in a new temporary folder; on exit `stack down`, nothing left, folder gone."""
    root = Path(tempfile.mkdtemp(prefix=prefix))
    root.chmod(0o711)
    directory = root / "stack"
    t0 = time.monotonic()
    r = provenance("stack", "up", "--dir", str(directory), "--json")
    elapsed = time.monotonic() - t0
    assert r.returncode == 0, f"stack up failed (exit {r.returncode}):\n{r.stderr}"
    running = Stack(root, directory, json.loads(r.stdout), elapsed)
    try:
        yield running
    finally:
        doc = running.refresh()
        down = provenance("stack", "down", "--dir", str(directory), timeout=120)
        assert down.returncode == 0, down.stderr
        assert_all_gone(doc)
        shutil.rmtree(root, ignore_errors=True)
