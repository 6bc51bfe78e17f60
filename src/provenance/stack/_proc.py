"""Processes the stack starts: spawn detached, recognise them again, stop exactly them.

A component is started as the leader of a new session, so everything it forks (PostgreSQL
backends, uvicorn workers) shares its session id. The kernel never hands out a PID that is
still in use as a session id, so a live process whose session id equals the recorded leader PID
belongs to that component. The leader itself is recognised by PID *and* start time *and* command
line: after a reboot or PID reuse, a different process with the same PID is never signalled.
The start time is the kernel's own (boot id and clock ticks since boot, on Linux): a wall-clock
start time moves whenever the system clock is adjusted, and a live component must not look dead.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HOST = "127.0.0.1"
LOG_MARK = "=== provenance stack: starting"


@dataclass(frozen=True)
class Proc:
    """A started component process, as recorded in stack.json."""

    pid: int
    create_time: float  # wall clock, for people; identity uses `start` where the kernel gives one
    cmdline: tuple[str, ...]
    start: str = ""  # "<boot id>:<clock ticks since boot>", fixed for the life of the process

    def to_dict(self) -> dict[str, Any]:
        out = {"pid": self.pid, "create_time": self.create_time, "cmdline": list(self.cmdline)}
        if self.start:
            out["start"] = self.start
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Proc:
        pid, created, cmdline = data["pid"], data["create_time"], data["cmdline"]
        start = data.get("start", "")
        if not isinstance(pid, int) or not isinstance(created, (int, float)):
            raise ValueError("pid and create_time must be numbers")
        if not isinstance(cmdline, list) or not all(isinstance(a, str) for a in cmdline):
            raise ValueError("cmdline must be a list of strings")
        if not isinstance(start, str):
            raise ValueError("start must be a string")
        return cls(pid, float(created), tuple(cmdline), start)


def start_token(pid: int) -> str:
    """The kernel's start time of `pid` with the boot it belongs to, or "" where there is none.

    /proc/<pid>/stat's `starttime` counts clock ticks from boot and never changes; psutil's
    create_time adds /proc/stat's `btime`, which follows every clock adjustment.
    """
    try:
        boot = Path("/proc/sys/kernel/random/boot_id").read_text().strip()
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return ""
    fields = stat[stat.rfind(b")") + 2 :].split()
    # Fields after the command name start at field 3 (state); starttime is field 22.
    if len(fields) < 20 or not fields[19].isdigit() or not boot:
        return ""
    return f"{boot}:{fields[19].decode()}"


def spawn(
    argv: Sequence[str],
    *,
    env: Mapping[str, str],
    log: Path,
    cwd: Path,
    user: tuple[int, int] | None = None,
) -> Proc:
    """Start `argv` as a new session leader, output appended to `log`; return its identity."""
    import psutil

    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        out.write(f"{LOG_MARK} {argv[0]} at {stamp} ===\n".encode())
        out.flush()
        extra: dict[str, Any] = {}
        if user is not None:
            extra = {"user": user[0], "group": user[1], "extra_groups": []}
        proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=dict(env),
            cwd=cwd,
            start_new_session=True,
            close_fds=True,
            **extra,
        )
    _await_exec(proc.pid)
    try:
        created = psutil.Process(proc.pid).create_time()
    except psutil.NoSuchProcess:
        created = 0.0
    # The Popen handle is dropped on purpose: the process outlives this command.
    return Proc(proc.pid, created, tuple(argv), start_token(proc.pid))


def _await_exec(pid: int, timeout: float = 10.0) -> None:
    """Wait until the kernel has finished exec'ing `pid` (its command line is readable).

    Popen returns once the child's close-on-exec pipe closes, which happens inside execve
    before the new program's arguments are set up: for that short window /proc/<pid>/cmdline
    is empty, and an identity check made then would call our own fresh process a stranger.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if Path(f"/proc/{pid}/cmdline").read_bytes():
                return
        except OSError:
            return  # gone (or no /proc): nothing to wait for
        time.sleep(0.001)


def reap(pid: int) -> None:
    """Collect the exit status of a child of this process, if it is one and has exited."""
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def is_alive(p: Proc) -> bool:
    """True when the recorded leader still runs: same PID, start time and command line."""
    import psutil

    reap(p.pid)
    try:
        proc = psutil.Process(p.pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return False
        if p.start:
            same_start = start_token(p.pid) == p.start
        else:
            # No kernel start time recorded: the wall clock, allowing btime's whole-second steps.
            same_start = abs(proc.create_time() - p.create_time) < 1.5
        return same_start and tuple(proc.cmdline()) == p.cmdline
    except (psutil.NoSuchProcess, psutil.AccessDenied, psutil.ZombieProcess):
        return False


def members(p: Proc) -> list[int]:
    """PIDs of live processes in the component's session (the leader and what it forked)."""
    import psutil

    found = []
    for proc in psutil.process_iter():
        try:
            if os.getsid(proc.pid) == p.pid and proc.status() != psutil.STATUS_ZOMBIE:
                found.append(proc.pid)
        except (OSError, psutil.Error):
            continue
    if p.pid in found and not is_alive(p):
        # The PID is now someone else's session: not ours to signal.
        return []
    return found


def stop(
    p: Proc,
    *,
    first: signal.Signals = signal.SIGTERM,
    leader_only: bool = False,
    timeout: float = 20.0,
) -> bool:
    """Stop the component's session: `first`, then SIGKILL to what is left after `timeout`.

    With `leader_only` the first signal goes to a live leader alone (PostgreSQL's postmaster
    shuts its backends down itself); without a live leader, what is left gets SIGTERM. Returns
    True when nothing of the session is left. Only processes recognised by `members` are ever
    signalled.
    """
    targets = members(p)
    if not targets:
        return True
    if leader_only and is_alive(p):
        targets = [p.pid]
    elif leader_only:
        first = signal.SIGTERM
    for pid in targets:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, first)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        reap(p.pid)
        if not members(p):
            return True
        time.sleep(0.1)
    for pid in members(p):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5.0
    while time.monotonic() < deadline:
        reap(p.pid)
        if not members(p):
            return True
        time.sleep(0.1)
    return False


def free_ports(count: int) -> list[int]:
    """`count` distinct ports free on 127.0.0.1 right now (held open together while chosen)."""
    socks: list[socket.socket] = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind((HOST, 0))
            socks.append(s)
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


def port_open(port: int, timeout: float = 0.5) -> bool:
    """True when something accepts TCP connections on 127.0.0.1:`port`."""
    try:
        with socket.create_connection((HOST, port), timeout=timeout):
            return True
    except OSError:
        return False


def port_free(port: int) -> bool:
    """True when a server could listen on 127.0.0.1:`port` now.

    Servers set SO_REUSEADDR, so connections of a killed process lingering in TIME_WAIT do
    not count.
    """
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((HOST, port))
        except OSError:
            return False
        return True
