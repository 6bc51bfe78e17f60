"""sha256 of many files at the speed the machine allows.

Measured on 2 cores: threads make small-file hashing slower (the GIL is held between the many
short syscalls), so small files are hashed by forked worker processes that pull batches of
indices from a pipe and send fixed-size binary records back (no pickling, no interpreter start-up).
Among many files the large ones are hashed by threads afterwards: hashlib releases the GIL while
digesting big buffers, and one file's sha256 cannot be split. For the recorder, a few files that
add up to a lot of data (a model directory, one weights file) go to forked workers, one file per
task: the parent then holds no GIL while they are hashed, so it can load the signer meanwhile at
full speed (a thread would stall on the GIL at every chunk); those workers map large files
(mmap) instead of copying them out of the page cache. A file whose size or mtime changes while it
is read is an error. `_stream` feeds the same workers with paths while the walk is still listing.
"""

from __future__ import annotations

import contextlib
import hashlib
import mmap
import os
import signal
import stat
import struct
import sys
import threading
import warnings
from collections.abc import Callable, Sequence

from provenance.errors import ArtifactError

Progress = Callable[[int], None]  # called with the number of files just finished

# Read buffer for large files. Measured on a 2 GiB file: 64 KiB reads hash it in 1.65 s, 128 KiB
# to 1 MiB reads take 2.4-2.9 s (the copy out of the page cache no longer stays in cache).
CHUNK = 1 << 16
MAP_WINDOW = 64 << 20  # mapped at a time by forked workers: bounds their resident memory
LARGE = 8 << 20  # files above this go to the thread pool
FORK_MIN_FILES = 2000  # below this, forking costs more than it saves ...
HEAVY = 64 << 20  # ... unless the files add up to this many bytes
BATCH = 256  # files per work item handed to a worker

_SIGBUS = getattr(signal, "SIGBUS", -1)
_TASK = struct.Struct("<II")  # [start, end) indices into the path list
_OK, _ERR, _BIG, _CHANGED, _SPECIAL = 0, 1, 2, 3, 4
# Non-blocking open: a path swapped for a FIFO after the walk must not block the step; the
# fstat below (needed anyway for the size) then refuses anything that is not a regular file.
_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
_NOT_REGULAR = "is not a regular file (FIFO, socket or device); it cannot be an artifact"


class _Changed(Exception):
    pass


class _NotRegular(Exception):
    pass


def _digest_fd(
    fd: int, buf: bytearray | None, before: os.stat_result | None = None, mapped: bool = False
) -> bytes:
    """sha256 of an open file; `mapped` (forked workers only) reads a large one through mmap."""
    before = before or os.fstat(fd)
    if not stat.S_ISREG(before.st_mode):
        raise _NotRegular
    h = hashlib.sha256()
    size = 0
    if mapped and before.st_size > LARGE:
        size = _digest_mapped(fd, before.st_size, h)
    elif before.st_size <= LARGE:
        # Growth after the last read shows up as a size mismatch with the second fstat.
        while size < before.st_size or size == 0:
            data = os.read(fd, before.st_size - size if before.st_size > size else 65536)
            if not data:
                break
            h.update(data)
            size += len(data)
    else:  # stream: never hold a multi-GB file in memory
        view = memoryview(buf if buf is not None else bytearray(CHUNK))
        with open(fd, "rb", buffering=0, closefd=False) as f:
            while n := f.readinto(view):
                h.update(view[:n])
                size += n
    after = os.fstat(fd)
    if (
        size != after.st_size
        or before.st_size != after.st_size
        or before.st_mtime_ns != after.st_mtime_ns
    ):
        raise _Changed
    return h.digest()


def _digest_mapped(fd: int, size: int, h: hashlib._Hash) -> int:
    """Feed `size` bytes of `fd` to `h` from a window mapped at a time; return the bytes read.

    No copy out of the page cache: a 2 GiB file hashes in 1.43 s instead of 1.65 s. Only forked
    workers use it: a file truncated meanwhile raises SIGBUS, which kills that worker, not the
    step, and the parent reports the file as changed (see `_hash_forked`). `mmap` is imported
    with this module, not here: a forked child must not import (another thread of the parent may
    have held an import lock when it forked).
    """
    for offset in range(0, size, MAP_WINDOW):
        length = min(MAP_WINDOW, size - offset)
        try:
            mm = mmap.mmap(fd, length, prot=mmap.PROT_READ, offset=offset)
        except ValueError:  # shorter than it was: truncated since the fstat
            raise _Changed from None
        with mm:
            if hasattr(mm, "madvise"):
                mm.madvise(mmap.MADV_SEQUENTIAL)
            with memoryview(mm) as view:
                h.update(view)
    return size


def hash_file(path: str, rel: str, buf: bytearray | None = None) -> bytes:
    """sha256 of one file; errors name `rel`."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        raise ArtifactError(rel, f"cannot read: {exc.strerror}") from exc
    try:
        return _digest_fd(fd, buf)
    except _NotRegular:
        raise ArtifactError(rel, _NOT_REGULAR) from None
    except _Changed:
        raise ArtifactError(rel, "file changed while it was being hashed") from None
    except OSError as exc:
        raise ArtifactError(rel, f"cannot read: {exc.strerror}") from exc
    finally:
        os.close(fd)


def hash_paths(
    base: str,
    relpaths: Sequence[str],
    *,
    workers: int | None = None,
    progress: Progress | None = None,
    fork_heavy: bool = False,
) -> list[bytes]:
    """Raw sha256 digests of `relpaths` (relative to `base`), in the same order."""
    raw = hash_paths_packed(
        base, relpaths, workers=workers, progress=progress, fork_heavy=fork_heavy
    )
    return [bytes(raw[i : i + 32]) for i in range(0, len(raw), 32)]


def hash_paths_packed(
    base: str,
    relpaths: Sequence[str],
    *,
    workers: int | None = None,
    progress: Progress | None = None,
    fork_heavy: bool = False,
) -> bytearray:
    """The digests of `relpaths` packed end to end, 32 bytes each, in the same order.

    One buffer instead of a bytes object per file: a million digests take 32 MB, not 80.
    `fork_heavy`: a few files holding much data are hashed by forked workers, not threads (for
    the recorder, whose main thread loads the signer meanwhile).
    """
    workers = workers or _cpu_count()
    out = bytearray(32 * len(relpaths))
    large: list[int]
    forkable = workers > 1 and hasattr(os, "fork")
    if forkable and len(relpaths) >= FORK_MIN_FILES:
        large = _hash_forked(base, relpaths, out, workers, progress)
    elif forkable and fork_heavy and _heavy(base, relpaths):
        large = _hash_forked(base, relpaths, out, min(workers, len(relpaths)), progress, batch=1)
    else:
        large = list(range(len(relpaths)))
    _hash_threaded(base, relpaths, large, out, workers, progress)
    return out


def _heavy(base: str, relpaths: Sequence[str]) -> bool:
    """True when these (few) files hold enough bytes to be worth forking for."""
    total = 0
    for rel in relpaths:
        try:
            total += os.stat(os.path.join(base, rel)).st_size
        except OSError:
            return False  # the threaded path names the file
        if total >= HEAVY:
            return True
    return False


def _cpu_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def _hash_threaded(
    base: str,
    relpaths: Sequence[str],
    indices: list[int],
    out: bytearray,
    workers: int,
    progress: Progress | None,
) -> None:
    if not indices:
        return
    local = threading.local()

    def one(i: int) -> None:
        buf = getattr(local, "buf", None)
        if buf is None:
            buf = local.buf = bytearray(CHUNK)
        out[32 * i : 32 * i + 32] = hash_file(os.path.join(base, relpaths[i]), relpaths[i], buf)
        if progress:
            progress(1)

    if len(indices) == 1 or workers == 1:
        for i in indices:
            one(i)
        return
    from concurrent.futures import ThreadPoolExecutor  # imported on use: keeps import light

    with ThreadPoolExecutor(max_workers=min(workers, len(indices))) as pool:
        for fut in [pool.submit(one, i) for i in indices]:
            fut.result()


class _Batcher:
    """A worker's per-batch hashing: files opened relative to their (cached) directory."""

    def __init__(self, base: str, big: bool) -> None:
        self.base, self.big = os.fsencode(base), big
        self.buf = bytearray(CHUNK) if big else None
        self.cur_dir: bytes | None = None
        self.dfd = -1

    def hash(self, start: int, rels: Sequence[bytes]) -> bytes:
        """One result record: header, one status byte per file, 32 bytes per file."""
        n = len(rels)
        status = bytearray(n)
        digests = bytearray(32 * n)
        for k, rel in enumerate(rels):
            dirname, _, name = rel.rpartition(b"/")
            try:
                if dirname != self.cur_dir:  # openat() relative to the directory: shorter lookups
                    if self.dfd >= 0:
                        os.close(self.dfd)
                        self.dfd = -1
                    self.dfd = os.open(
                        os.path.join(self.base, dirname),
                        os.O_RDONLY | os.O_DIRECTORY,
                    )
                    self.cur_dir = dirname
                fd = os.open(name, _OPEN_FLAGS, dir_fd=self.dfd)
            except OSError as exc:
                status[k], digests[32 * k] = _ERR, (exc.errno or 5) & 0xFF
                continue
            try:
                st = os.fstat(fd)
                size = st.st_size
                if 0 < size <= LARGE and stat.S_ISREG(st.st_mode):
                    # The common small file, `_digest_fd` inlined: one read, one more fstat.
                    data = os.read(fd, size)
                    after = os.fstat(fd)
                    if (
                        len(data) != size
                        or after.st_size != size
                        or after.st_mtime_ns != st.st_mtime_ns
                    ):
                        status[k] = _CHANGED
                    else:
                        digests[32 * k : 32 * k + 32] = hashlib.sha256(data).digest()
                elif size > LARGE and not self.big:
                    status[k] = _BIG
                else:
                    digests[32 * k : 32 * k + 32] = _digest_fd(fd, self.buf, st, self.big)
            except _Changed:
                status[k] = _CHANGED
            except _NotRegular:
                status[k] = _SPECIAL
            except OSError as exc:
                status[k], digests[32 * k] = _ERR, (exc.errno or 5) & 0xFF
            finally:
                os.close(fd)
        return _TASK.pack(start, start + n) + status + digests


def _worker(base: str, relpaths: Sequence[str], task_r: int, res_w: int, big: bool) -> None:
    """Child process body: hash batches until the task pipe is drained. Never returns.

    Per batch it sends one header, one status byte per file and 32 bytes per file; a failed file
    gets a status and its errno in place of a digest, and the parent builds the message. Large
    files are hashed here when `big`, else handed back (_BIG) for the threads.
    """
    code = 0
    batcher = _Batcher(base, big)
    if big and "faulthandler" in sys.modules:
        sys.modules["faulthandler"].disable()  # SIGBUS here means a truncated file, no crash
    try:
        while True:
            task = os.read(task_r, _TASK.size)
            if not task:
                break
            start, end = _TASK.unpack(task)
            _write_all(res_w, batcher.hash(start, [os.fsencode(p) for p in relpaths[start:end]]))
    except BaseException:  # noqa: BLE001 - a child must never unwind into the parent's code
        code = 70
    finally:
        os._exit(code)


def fork() -> int:
    """`os.fork()` for a hashing worker: buffered output flushed first (else printed twice)."""
    sys.stdout.flush()
    sys.stderr.flush()
    with warnings.catch_warnings():
        # The child only reads files and writes to its pipes, so no lock of the parent's
        # other threads can be held against it.
        warnings.simplefilter("ignore", DeprecationWarning)
        return os.fork()


def _write_all(fd: int, data: bytes | bytearray) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _hash_forked(
    base: str,
    relpaths: Sequence[str],
    out: bytearray,
    workers: int,
    progress: Progress | None,
    batch: int = BATCH,
) -> list[int]:
    """Hash files in `workers` forked children; return indices of large files left over.

    With `batch` 1 (a few heavy files) the children hash large files too and none is left over.
    """
    task_r, task_w = os.pipe()
    batches = [(s, min(s + batch, len(relpaths))) for s in range(0, len(relpaths), batch)]
    pids: list[int] = []
    readers: dict[int, int] = {}
    try:
        for _ in range(workers):
            res_r, res_w = os.pipe()
            pid = fork()
            if pid == 0:  # pragma: no cover - runs in the child, reported via the pipe
                os.close(res_r)
                os.close(task_w)
                _worker(base, relpaths, task_r, res_w, batch == 1)
            os.close(res_w)
            pids.append(pid)
            readers[res_r] = pid
        os.close(task_r)
        task_r = -1
        # All tasks fit in the pipe buffer for any realistic count; write in a thread otherwise.
        payload = b"".join(_TASK.pack(s, e) for s, e in batches)
        writer = threading.Thread(target=_feed, args=(task_w, payload), daemon=True)
        writer.start()
        results = _collect(readers, out, progress)
        large, errors = results.large, results.errors
        writer.join()
    finally:
        for fd in (task_r,):
            if fd >= 0:
                os.close(fd)
        for fd in readers:
            with contextlib.suppress(OSError):
                os.close(fd)
        statuses = [os.waitpid(pid, 0)[1] for pid in pids]
    if batch == 1 and any(os.WIFSIGNALED(st) and os.WTERMSIG(st) == _SIGBUS for st in statuses):
        # A mapped file was truncated under a worker: the file it never answered for changed.
        answered = set(results.answered)
        errors += [(i, -1) for i in range(len(relpaths)) if i not in answered]
    check_results(base, relpaths, errors, statuses)
    return large


def check_results(
    base: str, relpaths: Sequence[str], errors: list[tuple[int, int]], statuses: list[int]
) -> None:
    """Raise for the first failed file (in path order), or for a worker that died."""
    if errors:
        i, err = min(errors, key=lambda e: relpaths[e[0]])
        msg = (
            "file changed while it was being hashed"
            if err == -1
            else _NOT_REGULAR
            if err == -2
            else f"cannot read: {os.strerror(err)}"
        )
        raise ArtifactError(relpaths[i], msg)
    if any(s != 0 for s in statuses):
        raise ArtifactError(base, "a hashing worker process failed")


def _feed(fd: int, payload: bytes) -> None:
    try:
        _write_all(fd, payload)
    finally:
        os.close(fd)


def _collect(readers: dict[int, int], out: bytearray, progress: Progress | None) -> Results:
    """Read batch results from every worker until all pipes close."""
    import selectors

    results = Results(out, progress)
    pending = {fd: bytearray() for fd in readers}
    sel = selectors.DefaultSelector()
    for fd in readers:
        sel.register(fd, selectors.EVENT_READ)
    try:
        while pending:
            for key, _ in sel.select():
                if results.read(key.fd, pending[key.fd]) is None:
                    sel.unregister(key.fd)
                    del pending[key.fd]
    finally:
        sel.close()
    return results


class Results:
    """Parses workers' result records into `out`; notes large files left over and failures."""

    def __init__(self, out: bytearray, progress: Progress | None) -> None:
        self.out, self.progress = out, progress
        self.large: list[int] = []
        self.errors: list[tuple[int, int]] = []
        self.answered: list[int] = []  # first index of each batch answered

    def read(self, fd: int, buf: bytearray) -> list[tuple[int, int]] | None:
        """Read from `fd` into `buf`; return the (start, end) batches completed, None at EOF."""
        chunk = os.read(fd, 1 << 20)
        if not chunk:
            return None
        buf += chunk
        done: list[tuple[int, int]] = []
        pos, out = 0, self.out
        while len(buf) - pos >= _TASK.size:
            start, end = _TASK.unpack_from(buf, pos)
            n = end - start
            size = _TASK.size + 33 * n
            if len(buf) - pos < size:
                break
            st = bytes(buf[pos + _TASK.size : pos + _TASK.size + n])
            out[32 * start : 32 * end] = buf[pos + _TASK.size + n : pos + size]
            if st.count(_OK) != n:
                for k, s in enumerate(st):
                    if s == _BIG:
                        self.large.append(start + k)
                    elif s != _OK:
                        code = {_CHANGED: -1, _SPECIAL: -2}.get(s, out[32 * (start + k)])
                        self.errors.append((start + k, code))
            pos += size
            done.append((start, end))
            self.answered.append(start)
            if self.progress:
                self.progress(n)
        del buf[:pos]
        return done
