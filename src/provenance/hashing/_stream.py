"""Walk and hash at once: forked workers hash the first files while the walk lists the rest.

For many small files the walk is a fifth of the work and the parent does it alone; handing each
batch of paths to a worker as soon as it is listed overlaps the two. Each worker has its own task
pipe (a batch is a header and the NUL-separated paths, longer than an atomic pipe write) and
result pipe (the engine's fixed records). The parent keeps at most `_QUEUED` bytes of paths in a
worker's pipe, so writing never blocks on a busy worker while another one idles. Paths arrive in
walk order; they are sorted once at the end, their digests with them. Errors are the same as the
walk-then-hash path's: a walk error stops everything, else the first failed file in path order.
"""

from __future__ import annotations

import contextlib
import itertools
import operator
import os
import selectors
import struct
from collections.abc import Callable, Iterator

from provenance.errors import ArtifactError
from provenance.hashing import _engine
from provenance.hashing._engine import (
    Progress,
    Results,
    _Batcher,
    _cpu_count,
    _hash_threaded,
    _write_all,
    check_results,
    fork,
    hash_paths_packed,
)

_HEADER = struct.Struct("<III")  # start index, end index, bytes of NUL-separated paths
_QUEUED = 48 * 1024  # bytes of paths waiting in one worker's pipe (its buffer holds 64 KiB)


def hash_walked(
    base: str,
    found: Iterator[str],
    *,
    progress: Progress | None = None,
    on_total: Callable[[int], None] | None = None,
    fork_heavy: bool = False,
) -> tuple[list[str], bytearray]:
    """Sorted paths from the walk `found` and their sha256 digests packed in the same order."""
    first = list(itertools.islice(found, _engine.FORK_MIN_FILES))
    workers = _cpu_count()
    if len(first) < _engine.FORK_MIN_FILES or workers < 2 or not hasattr(os, "fork"):
        paths = sorted(itertools.chain(first, found))
        if on_total:
            on_total(len(paths))
        return paths, hash_paths_packed(base, paths, progress=progress, fork_heavy=fork_heavy)
    pool = _Pool(base, workers, progress)
    try:
        paths = pool.run(itertools.chain(first, found), on_total)
    finally:
        statuses = pool.close()
    check_results(base, paths, pool.results.errors, statuses)
    out = pool.results.out
    _hash_threaded(base, paths, pool.results.large, out, workers, progress)
    return _sorted(paths, out)


def _sorted(paths: list[str], out: bytearray) -> tuple[list[str], bytearray]:
    if all(map(operator.lt, paths, itertools.islice(paths, 1, None))):
        return paths, out  # the walk yields in order unless patterns overlap or names interleave
    order = sorted(range(len(paths)), key=paths.__getitem__)
    raw = bytes(out)
    packed = bytearray(b"".join([raw[32 * i : 32 * i + 32] for i in order]))
    return [paths[i] for i in order], packed


class _Pool:
    """Forked workers fed batches of paths as they are found; results parsed into one buffer."""

    def __init__(self, base: str, workers: int, progress: Progress | None) -> None:
        self.base = base
        self.results = Results(bytearray(), progress)
        self.pids: list[int] = []
        self.tasks: list[int] = []  # parent's write end of each worker's task pipe
        self.queued: list[int] = []  # bytes sent to each worker and not answered yet
        self.sizes: dict[int, tuple[int, int]] = {}  # batch start -> (worker, bytes)
        self.readers: dict[int, bytearray] = {}
        self.sel = selectors.DefaultSelector()
        for w in range(workers):
            task_r, task_w = os.pipe()
            res_r, res_w = os.pipe()
            pid = fork()
            if pid == 0:  # pragma: no cover - runs in the child, reported via the pipe
                for fd in (task_w, res_r, *self.tasks, *self.readers):
                    os.close(fd)  # a sibling's task pipe held open here would never reach EOF
                _worker(base, task_r, res_w)
            os.close(task_r)
            os.close(res_w)
            self.pids.append(pid)
            self.tasks.append(task_w)
            self.queued.append(0)
            self.readers[res_r] = bytearray()
            self.sel.register(res_r, selectors.EVENT_READ, w)

    def run(self, found: Iterator[str], on_total: Callable[[int], None] | None) -> list[str]:
        paths: list[str] = []
        sent, batch = 0, _engine.BATCH
        for rel in found:
            paths.append(rel)
            if len(paths) - sent == batch:
                self._send(sent, paths[sent:])
                sent = len(paths)
        if sent < len(paths):
            self._send(sent, paths[sent:])
        if on_total:
            on_total(len(paths))
        for fd in self.tasks:
            os.close(fd)
        self.tasks = []
        while self.readers:
            self._poll(None)
        return paths

    def _send(self, start: int, batch: list[str]) -> None:
        payload = "\0".join(batch).encode("utf-8", "surrogateescape")
        msg = _HEADER.pack(start, start + len(batch), len(payload)) + payload
        self.results.out += bytes(32 * len(batch))
        w = min(range(len(self.queued)), key=self.queued.__getitem__)
        while self.queued[w] and self.queued[w] + len(msg) > _QUEUED:
            self._poll(None)
            w = min(range(len(self.queued)), key=self.queued.__getitem__)
        _write_all(self.tasks[w], msg)
        self.queued[w] += len(msg)
        self.sizes[start] = (w, len(msg))

    def _poll(self, timeout: float | None) -> None:
        for key, _ in self.sel.select(timeout):
            done = self.results.read(key.fd, self.readers[key.fd])
            if done is None:
                self.sel.unregister(key.fd)
                os.close(key.fd)
                del self.readers[key.fd]
                if not self.tasks:
                    continue
                # A worker quit before it was told to: it crashed.
                raise ArtifactError(self.base, "a hashing worker process failed")
            for start, _ in done:
                w, size = self.sizes.pop(start)
                self.queued[w] -= size

    def close(self) -> list[int]:
        """Stop every worker (finishing or abandoning its queue) and reap it; exit statuses."""
        for fd in (*self.tasks, *self.readers):
            with contextlib.suppress(OSError):
                os.close(fd)
        self.tasks, self.readers = [], {}
        self.sel.close()
        return [os.waitpid(pid, 0)[1] for pid in self.pids]


def _read_exact(fd: int, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = os.read(fd, n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def _worker(base: str, task_r: int, res_w: int) -> None:
    """Child process body: hash each batch of paths read from the task pipe. Never returns."""
    code = 0
    batcher = _Batcher(base, big=False)
    try:
        while header := _read_exact(task_r, _HEADER.size):
            start, _end, size = _HEADER.unpack(header)
            rels = _read_exact(task_r, size).split(b"\0")
            _write_all(res_w, batcher.hash(start, rels))
    except BaseException:  # noqa: BLE001 - a child must never unwind into the parent's code
        code = 70
    finally:
        os._exit(code)
