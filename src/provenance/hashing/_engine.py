"""sha256 of many files at the speed the machine allows, without forking the caller.

Measured on 2 cores: threads make small-file hashing slower (the GIL is held between the many
short syscalls), so many small files are hashed by worker processes (`_pool`: fresh
interpreters started once and reused, never forked from the caller, whose other threads may hold
locks) that take batches of paths over a pipe and send fixed-size binary records back (no
pickling). Among many files the large ones are hashed by threads afterwards: hashlib releases
the GIL while digesting big buffers, and one file's sha256 cannot be split. For the recorder, a
few files that add up to a lot of data (a model directory, one weights file) go to the worker
processes, one file per task: the caller then holds no GIL while they are hashed, so it can load
the signer meanwhile at full speed (a thread would stall on the GIL at every chunk). Nothing
maps a file (one truncated meanwhile would raise SIGBUS): large files are read in `CHUNK`
pieces, which is also faster here than mapping them (see `_worker`). A file whose size or
mtime changes while it is read is an error (a small file a worker reads in one call: its size; a
torn read gives a digest no state of the file has, which verification then refuses). `_stream`
feeds the same workers with paths while the walk is still listing.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence

from provenance.errors import ArtifactError
from provenance.hashing import _pool
from provenance.hashing._pool import NOT_REGULAR, check_results
from provenance.hashing._worker import CHUNK, Changed, NotRegular, digest_fd

__all__ = ["CHUNK", "Progress", "check_results", "hash_file", "hash_paths", "hash_paths_packed"]

Progress = Callable[[int], None]  # called with the number of files just finished

LARGE = 8 << 20  # files above this go to the thread pool (or, heavy, to a worker process)
POOL_MIN_FILES = 2000  # below this, handing files to worker processes costs more than it saves
HEAVY = 64 << 20  # ... unless the files add up to this many bytes
BATCH = 256  # files per work item handed to a worker


def hash_file(path: str, rel: str, buf: bytearray | None = None) -> bytes:
    """sha256 of one file, read (never mapped) in the caller's process; errors name `rel`."""
    try:
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        raise ArtifactError(rel, f"cannot read: {exc.strerror}") from exc
    try:
        return digest_fd(fd, buf, LARGE)
    except NotRegular:
        raise ArtifactError(rel, NOT_REGULAR) from None
    except Changed:
        raise ArtifactError(rel, "file changed while it was being hashed") from None
    except OSError as exc:
        raise ArtifactError(rel, f"cannot read: {exc.strerror}") from exc
    finally:
        os.close(fd)


_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)


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
    `fork_heavy` (the name predates the worker processes; nothing is forked): a few files
    holding much data are hashed by worker processes, not threads (for the recorder, whose main
    thread loads the signer meanwhile).
    """
    workers = workers or _cpu_count()
    out = bytearray(32 * len(relpaths))
    large: list[int] | None = None
    pooled = workers > 1 and _pool.available()
    if pooled and len(relpaths) >= POOL_MIN_FILES:
        large = _hash_pooled(base, relpaths, out, workers, progress, big=False)
    elif pooled and fork_heavy and _heavy(base, relpaths):
        n = min(workers, len(relpaths))
        large = _hash_pooled(base, relpaths, out, n, progress, big=True)
    if large is None:  # not worth it, or no worker could start
        large = list(range(len(relpaths)))
    _hash_threaded(base, relpaths, large, out, workers, progress)
    return out


def _hash_pooled(
    base: str,
    relpaths: Sequence[str],
    out: bytearray,
    workers: int,
    progress: Progress | None,
    *,
    big: bool,
) -> list[int] | None:
    """Hash files in `workers` worker processes; the indices of large files left over.

    None when no worker could start. `big` (a few heavy files): one file per task, large ones
    hashed there too.
    """
    ws = _pool.acquire(workers)
    if ws is None:
        return None
    batch = 1 if big else BATCH
    clean = False
    try:
        job = _pool.Job(ws, workers, base, big=big, out=out, progress=progress, large=LARGE)
        for s in range(0, len(relpaths), batch):
            job.send(s, relpaths[s : s + batch])
        results = job.finish()
        clean = True
    finally:
        _pool.release(ws, clean)
    check_results(base, relpaths, results.errors)
    return results.large


def _heavy(base: str, relpaths: Sequence[str]) -> bool:
    """True when these (few) files hold enough bytes to be worth the worker processes."""
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
