"""Hashing worker processes: fresh interpreters, started on first big job, reused after it.

Nothing here forks the caller, which may be a training process whose other threads hold locks
(logging, OpenSSL, CUDA, allocator arenas): a forked child that needs one of them deadlocks. A
worker is `python -I -S hashing/_worker.py`, started by `subprocess` (fork-exec in C: no Python
code runs in between, so no lock is taken), importing the standard library only: it never
imports the caller's `__main__` (safe under `python -c`, a notebook or an embedded REPL) and
starts in about 20 ms. The workers live as long as the process and serve one job at a time; a
job that fails, is cancelled or loses a worker kills its workers (the next job starts fresh), a
clean one hands them back. A worker's stdin ending (the process exits, even by SIGKILL) ends
it; at exit the idle workers are also reaped.
"""

from __future__ import annotations

import atexit
import os
import selectors
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from typing import NoReturn

from provenance.errors import ArtifactError, PathEscapeError
from provenance.hashing import _worker
from provenance.hashing._worker import (
    BATCH,
    BIG,
    CHANGED,
    DONE_MARK,
    END,
    ESCAPED,
    IN,
    JOB,
    JOB_ARGS,
    LARGE_FILE,
    OK,
    SPECIAL,
    TASK,
    write_all,
)

Progress = Callable[[int], None]  # called with the number of files just finished

QUEUED = 48 * 1024  # bytes of paths waiting in one worker's pipe (its buffer holds 64 KiB)
NOT_REGULAR = "is not a regular file (FIFO, socket or device); it cannot be an artifact"


def worker_argv() -> list[str]:
    """The command that starts one worker: isolated (`-I`), no site-packages (`-S`)."""
    return [sys.executable, "-I", "-S", _worker.__file__]


def available() -> bool:
    """True when worker processes can be started (a POSIX interpreter that knows its path).

    A frozen application's executable is not an interpreter: it hashes with threads.
    """
    return (
        os.name == "posix"
        and bool(sys.executable)
        and not getattr(sys, "frozen", False)
        and os.path.isfile(_worker.__file__)
    )


class _Proc:
    """One worker process and the parent's ends of its pipes."""

    def __init__(self) -> None:
        self.popen = subprocess.Popen(
            worker_argv(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # nothing of the caller's terminal or log pipes is held
            bufsize=0,
            close_fds=True,
        )
        assert self.popen.stdin is not None and self.popen.stdout is not None
        self.task = self.popen.stdin.fileno()
        self.res = self.popen.stdout.fileno()

    def close_pipes(self) -> None:
        for f in (self.popen.stdin, self.popen.stdout):
            if f is not None:
                f.close()


class Workers:
    """A set of worker processes owned by one job at a time."""

    def __init__(self) -> None:
        self.procs: list[_Proc] = []
        self.owner = os.getpid()

    def grow(self, n: int) -> None:
        """Start workers until `n` are alive (in parallel: each starts while the next does)."""
        for p in self.procs:
            if p.popen.poll() is not None:  # died while idle (OOM killer, a stray signal)
                p.close_pipes()
        self.procs = [p for p in self.procs if p.popen.returncode is None]
        while len(self.procs) < n:
            self.procs.append(_Proc())

    def pids(self) -> list[int]:
        """Process ids of the workers."""
        return [p.popen.pid for p in self.procs]

    def close(self, timeout: float = 5.0) -> None:
        """End the workers by closing their stdin; kill any that does not exit in `timeout`."""
        for p in self.procs:
            if p.popen.stdin is not None:
                p.popen.stdin.close()
        for p in self.procs:
            try:
                p.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                p.popen.kill()
                p.popen.wait()
            p.close_pipes()
        self.procs = []

    def kill(self) -> None:
        """Stop the workers now, whatever they were doing, and reap them."""
        for p in self.procs:
            if p.popen.poll() is None:
                p.popen.kill()
        for p in self.procs:
            p.popen.wait()
            p.close_pipes()
        self.procs = []


_lock = threading.Lock()
_idle: Workers | None = None


def acquire(n: int) -> Workers | None:
    """`n` workers for one job (the idle set, grown if needed); None if none can start."""
    global _idle
    with _lock:
        ws, _idle = _idle, None
    if ws is None or ws.owner != os.getpid():
        ws = Workers()
    try:
        ws.grow(n)
    except OSError:  # no interpreter to start (frozen app, exhausted limits): threads instead
        ws.kill()
        return None
    return ws


def release(ws: Workers, clean: bool) -> None:
    """Hand the workers back after a job: kept for the next job if it ended cleanly."""
    global _idle
    if not clean:
        ws.kill()
        return
    with _lock:
        if _idle is None:
            _idle, ws = ws, None  # type: ignore[assignment]  # kept; nothing left to close
    if ws is not None:
        ws.close()  # another job's set is kept already


def prestart(n: int) -> None:
    """Start `n` workers now and keep them idle for the next job (none if they cannot start).

    A caller that knows a job is coming (`provenance run` with materials) lets their start-up
    (~20 ms each, a fresh interpreter) overlap its own imports instead of waiting for it.
    """
    if available():
        ws = acquire(n)
        if ws is not None:
            release(ws, True)


def idle_pids() -> list[int]:
    """Process ids of the workers waiting for the next job (for tests and diagnostics)."""
    with _lock:
        return _idle.pids() if _idle is not None else []


def shutdown() -> None:
    """End the idle workers and reap them (at exit; tests call it to start from nothing)."""
    global _idle
    with _lock:
        ws, _idle = _idle, None
    if ws is not None:
        ws.close()


def _forget_in_child() -> None:
    """In a child forked by the caller: the parent's workers are not this process's to use."""
    global _lock, _idle
    _lock = threading.Lock()  # it may have been held by another thread at the fork
    if _idle is not None:
        for p in _idle.procs:
            p.close_pipes()  # only this process's copies of the pipes
        _inherited.append(_idle)  # never collected here: its processes are not our children
        _idle = None


_inherited: list[Workers] = []


atexit.register(shutdown)
os.register_at_fork(after_in_child=_forget_in_child)


class Results:
    """Parses workers' result records into `out`; notes large files left over and failures.

    `ready(n)` is called whenever files `[0, n)` all have their digests in `out` (batches finish
    out of order), as long as no file so far failed or was left over as large.
    """

    def __init__(
        self,
        out: bytearray,
        progress: Progress | None,
        ready: Callable[[int], None] | None = None,
    ) -> None:
        self.out, self.progress, self.ready = out, progress, ready
        self.large: list[int] = []
        # (index, errno | -1 changed | -2 special | -3 a symlink out of the base)
        self.errors: list[tuple[int, int]] = []
        self.frontier = 0  # files [0, frontier) are all in
        self.finished: dict[int, int] = {}  # start -> end of batches in beyond the frontier

    def read(self, fd: int, buf: bytearray) -> tuple[list[int], bool] | None:
        """Read from `fd` into `buf`; the batches completed (their starts) and whether DONE came.

        None at end of file: the worker died.
        """
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return None
        buf += chunk
        done: list[int] = []
        finished = False
        pos, out = 0, self.out
        while len(buf) - pos >= TASK.size:
            start, end = TASK.unpack_from(buf, pos)
            if start == DONE_MARK:
                pos += TASK.size
                finished = True
                break
            n = end - start
            size = TASK.size + 33 * n
            if len(buf) - pos < size:
                break
            st = bytes(buf[pos + TASK.size : pos + TASK.size + n])
            out[32 * start : 32 * end] = buf[pos + TASK.size + n : pos + size]
            if st.count(OK) != n:
                for k, s in enumerate(st):
                    if s == LARGE_FILE:
                        self.large.append(start + k)
                    elif s != OK:
                        code = {CHANGED: -1, SPECIAL: -2, ESCAPED: -3}.get(s, out[32 * (start + k)])
                        self.errors.append((start + k, code))
            pos += size
            done.append(start)
            self.finished[start] = end
            if self.progress:
                self.progress(n)
        del buf[:pos]
        frontier = self.frontier
        while frontier in self.finished:
            frontier = self.finished.pop(frontier)
        if frontier != self.frontier:
            self.frontier = frontier
            if self.ready is not None and not (self.large or self.errors):
                self.ready(frontier)
        return done, finished


class Job:
    """One hashing job over the first `n` of `ws`: batches sent as they come, results parsed.

    Each worker has its own task pipe; the parent keeps at most `QUEUED` bytes of paths in one
    (`big`: one file), so a write never blocks on a busy worker while another one idles.
    """

    def __init__(
        self,
        ws: Workers,
        n: int,
        base: str,
        *,
        big: bool,
        out: bytearray,
        progress: Progress | None,
        large: int,
        ready: Callable[[int], None] | None = None,
    ) -> None:
        self.base = base
        self.procs = ws.procs[:n]
        self.results = Results(out, progress, ready)
        self.big = big
        self.limit = 1 if big else QUEUED
        self.queued = [0] * n
        self.pending: dict[int, tuple[int, int]] = {}  # batch start -> worker, cost
        self.bufs = [bytearray() for _ in range(n)]
        self.sel = selectors.DefaultSelector()
        args = JOB_ARGS.pack(large) + os.fsencode(os.path.abspath(base))
        msg = IN.pack(JOB, BIG if big else 0, 0, len(args)) + args
        for w, p in enumerate(self.procs):
            self.sel.register(p.res, selectors.EVENT_READ, w)
        for w in range(n):
            self._write(w, msg)

    def send(self, start: int, batch: Sequence[str]) -> None:
        """Hand files `start .. start + len(batch)` to the least busy worker."""
        end = start + len(batch)
        payload = "\0".join(batch).encode("utf-8", "surrogateescape")
        msg = IN.pack(BATCH, start, end, len(payload)) + payload
        out = self.results.out
        if len(out) < 32 * end:
            out += bytes(32 * end - len(out))
        cost = 1 if self.big else len(msg)
        w = self._least_busy()
        while self.queued[w] and self.queued[w] + cost > self.limit:
            self._poll()
            w = self._least_busy()
        self._write(w, msg)
        self.queued[w] += cost
        self.pending[start] = (w, cost)

    def finish(self) -> Results:
        """Wait for every batch; the results (errors are the caller's to raise)."""
        msg = IN.pack(END, 0, 0, 0)
        for w in range(len(self.procs)):
            self._write(w, msg)
        try:
            while self.sel.get_map():
                self._poll()
        finally:
            self.sel.close()
        return self.results

    def _least_busy(self) -> int:
        return min(range(len(self.procs)), key=self.queued.__getitem__)

    def _write(self, w: int, msg: bytes) -> None:
        """Send `msg` to worker `w` (see `_died` if it has gone)."""
        try:
            write_all(self.procs[w].task, msg)
        except BrokenPipeError:
            self._died()

    def _poll(self) -> None:
        for key, _ in self.sel.select():
            w = key.data
            got = self.results.read(key.fd, self.bufs[w])
            if got is None:
                self._died()
            done, finished = got
            for start in done:
                _, cost = self.pending.pop(start)
                self.queued[w] -= cost
            if finished:
                self.sel.unregister(key.fd)

    def _died(self) -> NoReturn:
        """A worker's pipes closed before its DONE: it was killed (the OOM killer) or failed.

        Files are read, never mapped, so no file's state can kill a worker: the job fails
        (and the caller kills and reaps the set, see `release`).
        """
        raise ArtifactError(self.base, "a hashing worker process failed")


def check_results(base: str, relpaths: Sequence[str], errors: list[tuple[int, int]]) -> None:
    """Raise for the first failed file, in path order."""
    if errors:
        i, err = min(errors, key=lambda e: relpaths[e[0]])
        if err == -3:
            raise PathEscapeError(relpaths[i], "symlink points outside the base directory")
        msg = (
            "file changed while it was being hashed"
            if err == -1
            else NOT_REGULAR
            if err == -2
            else f"cannot read: {os.strerror(err)}"
        )
        raise ArtifactError(relpaths[i], msg)
