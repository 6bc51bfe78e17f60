"""Faults while the gate works: PostgreSQL or the object store going away, an MLflow worker and
the gate process killed mid-way. Each ends with exit 4 (or 1), the alias and the gate's tags
unchanged or fully written (never half), nothing unverified in a fetch destination, and a retry
after recovery succeeds.

These tests break components, so they run on a stack of their own (started once, by the first
of them, and stopped at the end of the module), never on the session's stack. The points where a
fault strikes are chosen from outside the gate, deterministically:
- the layout (owner-signed, test input) has an inspection that, when STACK_TEST_PAUSE names a
  folder, says "reached" there and waits for "go": the promotion is then past every download
  and inside verification, before any write;
- the object store frozen with SIGSTOP makes the plugin's re-hash (inside the alias request)
  wait, so "the decision tag is there and the alias is not" is a state that holds until thawed.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.stack_fixture import Stack, provenance, running_stack
from tests.stack_gate import ALIAS, GateProject, make_project, no_crash

pytestmark = pytest.mark.stack

PAUSE_SCRIPT = """\
import os, pathlib, sys, time
where = os.environ.get("STACK_TEST_PAUSE")
if where:
    folder = pathlib.Path(where)
    (folder / "reached").write_text("reached")
    deadline = time.monotonic() + 600
    while not (folder / "go").exists() and time.monotonic() < deadline:
        time.sleep(0.02)
sys.exit(0)
"""


@pytest.fixture(scope="module")
def fault_stack() -> Iterator[Stack]:
    """A stack of this module's own: the faults below never touch the session's stack."""
    with running_stack("provenance-fault-stack-") as running:
        yield running


@pytest.fixture(scope="module")
def project(fault_stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> GateProject:
    base = tmp_path_factory.mktemp("faults")
    script = base / "pause_inspection.py"
    script.write_text(PAUSE_SCRIPT)
    inspection = (
        "inspections:\n  - name: pause-point\n"
        f"    run: [{sys.executable!r}, {str(script)!r}]\n"
        '    materials:\n      - allow: "**"\n    products:\n      - allow: "**"\n'
    )
    return GateProject(make_project(base / "project", inspection), fault_stack)


@pytest.fixture
def model() -> str:
    return f"fault-{uuid.uuid4().hex[:8]}"


# --- breaking and repairing components -----------------------------------------------------


def proc_of(stack: Stack, name: str) -> Any:
    from provenance.stack import _state

    state = _state.load(stack.dir)
    assert state is not None and state.components[name].proc is not None
    return state.components[name].proc


def stop(stack: Stack, name: str) -> None:
    """Stop one component the way an outage does; `stack status` then says it crashed."""
    from provenance.stack import _postgres, _s3

    proc = proc_of(stack, name)
    if name == "postgresql":
        assert _postgres.stop(proc)
    else:
        assert _s3.stop(proc, stack.doc["ports"]["s3"])


def freeze(stack: Stack, name: str, sig: signal.Signals) -> None:
    """SIGSTOP / SIGCONT every process of a component (it hangs instead of refusing)."""
    from provenance.stack import _proc

    for pid in _proc.members(proc_of(stack, name)):
        os.kill(pid, sig)


def restore(stack: Stack) -> None:
    """`provenance stack up` restarts what is down; everything answers again."""
    r = provenance("stack", "up", "--dir", str(stack.dir), "--json")
    assert r.returncode == 0, r.stderr
    stack.doc = json.loads(r.stdout)
    assert stack.doc["components"] == dict.fromkeys(("postgresql", "s3", "mlflow"), "running")


class Paused:
    """A `promote` that stops inside verification (after its downloads, before any write)."""

    def __init__(self, project: GateProject, model: str, version: str, tmp: Path) -> None:
        self.dir = tmp / f"pause-{uuid.uuid4().hex[:6]}"
        self.dir.mkdir()
        self.proc = project.start(
            *project.promote_args(model, version), extra_env={"STACK_TEST_PAUSE": str(self.dir)}
        )

    def wait_reached(self, timeout: float = 300) -> None:
        deadline = time.monotonic() + timeout
        while not (self.dir / "reached").exists():
            if self.proc.poll() is not None:
                raise AssertionError(f"promote ended before the pause: {self.proc.stderr.read()}")  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "promote never reached the pause point"
            time.sleep(0.05)

    def go(self) -> None:
        (self.dir / "go").touch()

    def result(self, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        out, err = self.proc.communicate(timeout=timeout)
        return subprocess.CompletedProcess([], self.proc.returncode, out, err)


def assert_one_error_line(r: subprocess.CompletedProcess[str], *fragments: str) -> None:
    no_crash(r)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]


def assert_whole_or_nothing(project: GateProject, model: str, version: str) -> None:
    """The gate's tags on the version are absent, or a complete signed PASSED decision with
    its VSA; the alias is absent or on this version (which then fetches)."""
    tags = project.provenance_tags(model, version)
    assert set(tags) in (set(), {f"provenance.decision.{ALIAS}", f"provenance.vsa.{ALIAS}"})
    if tags:
        assert project.decision(model, version).passed
    assert project.alias_version(model) in (None, version)


def retry_succeeds(project: GateProject, model: str, version: str, tmp: Path) -> None:
    r = project.promote(model, version)
    assert r.returncode == 0, r.stdout + r.stderr
    assert project.alias_version(model) == version
    assert project.decision(model, version).passed
    dest = tmp / f"fetched-{uuid.uuid4().hex[:6]}"
    r = project.fetch(model, dest)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in dest.iterdir()) == sorted(
        p.name for p in (project.root / "models").iterdir()
    )


# --- the faults ------------------------------------------------------------------------------


@pytest.mark.parametrize("component", ["postgresql", "s3"])
def test_a_store_stopped_during_promote_exits_4_and_sets_no_alias(
    project: GateProject, model: str, tmp_path: Path, component: str
) -> None:
    version = project.register(model)
    paused = Paused(project, model, version, tmp_path)
    paused.wait_reached()
    stop(project.stack, component)
    try:
        paused.go()
        r = paused.result()
        assert r.returncode == 4, r.stdout + r.stderr
        assert_one_error_line(r, "MLflow unavailable: HTTP 50")
    finally:
        restore(project.stack)
    assert project.alias_version(model) is None
    if component == "postgresql":  # the first write failed: no record at all
        assert project.provenance_tags(model, version) == {}
    else:  # the records went to PostgreSQL; the alias's re-hash could not read the files
        assert_whole_or_nothing(project, model, version)
        log = Path(project.stack.doc["logs"]["mlflow"]).read_text(errors="replace")
        assert "the artifact store is unreachable" in log
    retry_succeeds(project, model, version, tmp_path)


def test_object_store_stopped_during_fetch_exits_4_and_leaves_no_files(
    project: GateProject, model: str, tmp_path: Path
) -> None:
    version = project.register(model)
    r = project.promote(model, version)
    assert r.returncode == 0, r.stderr
    parent = tmp_path / "serving"
    parent.mkdir()
    dest = parent / "model"
    stop(project.stack, "s3")
    try:
        r = project.fetch(model, dest)
        assert r.returncode == 4, r.stdout + r.stderr
        assert_one_error_line(r, "MLflow unavailable: HTTP 50")
        assert not dest.exists()
        assert list(parent.iterdir()) == []  # no scratch copy left beside DEST either
    finally:
        restore(project.stack)
    r = project.fetch(model, dest)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in dest.iterdir()) == sorted(
        p.name for p in (project.root / "models").iterdir()
    )


def wait_for_decision(project: GateProject, model: str, version: str, proc: Any) -> None:
    deadline = time.monotonic() + 120
    while f"provenance.decision.{ALIAS}" not in project.provenance_tags(model, version):
        assert proc.poll() is None, "promote ended before its decision was recorded"
        assert time.monotonic() < deadline, "the decision never appeared"
        time.sleep(0.05)


def test_gate_killed_between_signing_and_setting_the_alias(
    project: GateProject, model: str, tmp_path: Path
) -> None:
    version = project.register(model)
    paused = Paused(project, model, version, tmp_path)
    paused.wait_reached()
    freeze(project.stack, "s3", signal.SIGSTOP)  # the alias request's re-hash waits
    try:
        paused.go()
        wait_for_decision(project, model, version, paused.proc)
        assert project.alias_version(model) is None
        paused.proc.kill()
        paused.proc.communicate(timeout=60)
    finally:
        freeze(project.stack, "s3", signal.SIGCONT)
    # The alias request may already have reached the server, which finishes it on its own.
    assert_whole_or_nothing(project, model, version)
    assert project.decision(model, version).passed
    retry_succeeds(project, model, version, tmp_path)


def serving_worker(stack: Stack, client_pid: int) -> list[int]:
    """The MLflow processes holding a TCP connection from `client_pid` to the server's port."""
    import psutil

    from provenance.stack import _proc

    port = stack.doc["ports"]["mlflow"]["mlflow"]
    client = {
        (c.laddr.port, c.raddr.port)
        for c in psutil.Process(client_pid).net_connections(kind="tcp")
        if c.raddr and c.raddr.port == port and c.status == psutil.CONN_ESTABLISHED
    }
    found = []
    for pid in _proc.members(proc_of(stack, "mlflow")):
        try:
            conns = psutil.Process(pid).net_connections(kind="tcp")
        except psutil.Error:
            continue
        if any(c.raddr and (c.raddr.port, c.laddr.port) in client for c in conns):
            found.append(pid)
    return found


def test_mlflow_worker_killed_mid_request(project: GateProject, model: str, tmp_path: Path) -> None:
    version = project.register(model)
    paused = Paused(project, model, version, tmp_path)
    paused.wait_reached()
    freeze(project.stack, "s3", signal.SIGSTOP)  # the alias request stays inside its worker
    killed: list[int] = []
    try:
        paused.go()
        wait_for_decision(project, model, version, paused.proc)
        deadline = time.monotonic() + 60
        while not killed and time.monotonic() < deadline:
            for pid in serving_worker(project.stack, paused.proc.pid):
                os.kill(pid, signal.SIGKILL)
                killed.append(pid)
            time.sleep(0.02)
        assert killed, "no worker was serving the gate's request"
    finally:
        freeze(project.stack, "s3", signal.SIGCONT)
    r = paused.result()
    assert r.returncode in (0, 1, 4), r.stderr
    no_crash(r)
    if r.returncode:
        assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert_whole_or_nothing(project, model, version)
    if provenance("stack", "status", "--dir", str(project.stack.dir)).returncode != 0:
        restore(project.stack)
    retry_succeeds(project, model, version, tmp_path)
