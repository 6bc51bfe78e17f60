"""A real two-node Ray cluster on 127.0.0.1, started once per test session with `ray start`.

The head (`ray start --head --block`) and one worker node (`ray start --address … --block`)
each run in a session of their own (setsid): every daemon `ray start` spawns (gcs_server,
raylet, the dashboard head, log monitor, agents) and every task worker stays in that session,
so teardown signals exactly those processes by PID — never `ray stop`, which would stop any
other Ray on the machine — and asserts none is left. Memory and CPU stay small: one CPU per
node, a 80 MB object store, no usage stats. Every port is chosen free here; the temporary
directory (sockets, logs) is private to this cluster.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from tests.conftest import BIN

OBJECT_STORE = str(80 * 1024 * 1024)
START_TIMEOUT = 180
READY = "This command will now block forever"
ATTEMPTS = 5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def session_pids(leader: int) -> list[int]:
    """Live processes in the session `leader` started (the node's daemons and workers)."""
    found = []
    for proc in psutil.process_iter():
        try:
            if os.getsid(proc.pid) == leader and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc.pid)
        except (OSError, psutil.Error):
            continue
    return found


def ray_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "PROVENANCE_"))}
    env["RAY_USAGE_STATS_ENABLED"] = "0"
    return env


@dataclass
class RayCluster:
    address: str
    tmpdir: Path
    leaders: list[int] = field(default_factory=list)  # `ray start --block` of each node
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)

    def pids(self) -> list[int]:
        return [p for leader in self.leaders for p in session_pids(leader)]

    def task_workers(self, name: str) -> list[psutil.Process]:
        """Worker processes of this cluster executing the task function `name` right now."""
        found = []
        for pid in self.pids():
            with contextlib.suppress(psutil.Error):
                proc = psutil.Process(pid)
                if proc.cmdline()[:1] == [f"ray::{name}"]:
                    found.append(proc)
        return found

    def alive_nodes(self) -> int:
        probe = (
            "import ray, logging\n"
            f"ray.init(address={self.address!r}, logging_level=logging.ERROR,"
            " log_to_driver=False)\n"
            "print(sum(1 for n in ray.nodes() if n['Alive']))\n"
        )
        try:
            out = subprocess.run(
                [sys.executable, "-c", probe],
                capture_output=True,
                text=True,
                env=ray_env(),
                timeout=120,
                check=False,
            )
        except subprocess.TimeoutExpired:
            return 0
        lines = out.stdout.strip().splitlines()
        return int(lines[-1]) if lines and lines[-1].isdigit() else 0

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM every process of both nodes' sessions, SIGKILL what is left; assert none is."""
        for sig in (signal.SIGTERM, signal.SIGKILL):
            for pid in self.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + timeout / 2
            while self.pids() and time.monotonic() < deadline:
                time.sleep(0.2)
            if not self.pids():
                break
        for proc in self.procs:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        left = self.pids()
        assert not left, f"Ray processes left after stop: {left}"


def _start(cluster: RayCluster, args: list[str], log: Path) -> None:
    with log.open("ab") as out:
        proc = subprocess.Popen(
            [str(BIN / "ray"), "start", "--block", *args],
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=ray_env(),
            start_new_session=True,
        )
    cluster.logs.append(log)
    cluster.procs.append(proc)
    cluster.leaders.append(proc.pid)


def _node_args(cpus: int = 1) -> list[str]:
    return [
        f"--num-cpus={cpus}",
        f"--object-store-memory={OBJECT_STORE}",
        "--disable-usage-stats",
        "--node-ip-address=127.0.0.1",
        f"--node-manager-port={free_port()}",
        f"--object-manager-port={free_port()}",
        f"--dashboard-agent-listen-port={free_port()}",
        f"--dashboard-agent-grpc-port={free_port()}",
        f"--metrics-export-port={free_port()}",
        f"--runtime-env-agent-port={free_port()}",
    ]


@contextlib.contextmanager
def running_cluster(nodes: int = 2, head_cpus: int = 1) -> Iterator[RayCluster]:
    """A head node (`head_cpus` worker processes) plus `nodes - 1` worker nodes of one CPU."""
    # A short path: Ray's unix sockets live below it (108-byte limit).
    tmpdir = Path(tempfile.mkdtemp(prefix="rt-", dir="/tmp"))
    port = free_port()
    cluster = RayCluster(f"127.0.0.1:{port}", tmpdir)
    try:
        for attempt in range(1, ATTEMPTS + 1):
            head = [
                "--head",
                f"--port={port}",
                "--include-dashboard=false",
                f"--dashboard-port={free_port()}",
                f"--temp-dir={tmpdir}",
                *_node_args(head_cpus),
            ]
            _start(cluster, head, tmpdir.parent / f"{tmpdir.name}-head.log")
            try:
                _wait(cluster, 1)
                break
            except _StartFailed:
                _drop_last(cluster)  # see below: the same 30 s limit
                if attempt == ATTEMPTS:
                    raise
                port = free_port()
                cluster.address = f"127.0.0.1:{port}"
        for n in range(1, nodes):
            for attempt in range(1, ATTEMPTS + 1):
                worker = [f"--address={cluster.address}", *_node_args()]
                _start(cluster, worker, tmpdir.parent / f"{tmpdir.name}-worker{n}.log")
                try:
                    _wait(cluster, n + 1)
                    break
                except _StartFailed:
                    # `ray start` gives a node 30 s to register (hard-coded); on 2 busy
                    # cores it can miss that. Stop what it left and start the node again.
                    _drop_last(cluster)
                    if attempt == ATTEMPTS:
                        raise
        yield cluster
    finally:
        cluster.stop()
        shutil.rmtree(tmpdir, ignore_errors=True)
        for log in cluster.logs:
            log.unlink(missing_ok=True)


class _StartFailed(AssertionError):
    pass


def _drop_last(cluster: RayCluster) -> None:
    """Stop the processes of the node started last (by its session) and forget it."""
    leader = cluster.leaders.pop()
    proc = cluster.procs.pop()
    for sig in (signal.SIGTERM, signal.SIGKILL):
        for pid in session_pids(leader):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        time.sleep(2)
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(timeout=5)


def _wait(cluster: RayCluster, nodes: int) -> None:
    """Until the node started last has registered with the cluster.

    `ray start --block` prints READY once its node is registered (it waits for that itself),
    so the log is read rather than a driver connected every second (which costs seconds of
    CPU each on 2 busy cores). The node count is then confirmed once.
    """
    deadline = time.monotonic() + START_TIMEOUT
    log = cluster.logs[-1]
    while time.monotonic() < deadline:
        if any(proc.poll() is not None for proc in cluster.procs):
            raise _StartFailed(f"ray start exited: {log.read_text(errors='replace')[-2000:]}")
        if READY in log.read_text(errors="replace"):
            break
        time.sleep(0.5)
    else:
        raise AssertionError(f"the Ray node did not start in {START_TIMEOUT}s")
    while time.monotonic() < deadline:
        if cluster.alive_nodes() >= nodes:
            return
        time.sleep(1)
    raise AssertionError(f"the Ray cluster did not reach {nodes} nodes in {START_TIMEOUT}s")
