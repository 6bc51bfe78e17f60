"""A hashing worker process, and the per-file hashing it shares with the caller's threads.

The worker is started as a fresh interpreter (`python -I -S _worker.py`, see `_pool`), never
forked from the caller: a training process has thread pools, CUDA, logging and OpenSSL state,
and a lock another thread holds at fork time would deadlock a forked child. So this module
imports the standard library only and nothing from `provenance`.

Protocol, over the worker's stdin and stdout (binary, no pickling):

- in: `_IN` header (kind, a, b, payload bytes) and the payload. `JOB` starts a job: `a` = flags
  (`BIG`: hash large files here too), `b` = unused, payload = `JOB_ARGS` (the large-file
  threshold) and the base directory. `BATCH` hands over files `a..b` as NUL-separated paths
  relative to the base. `END` ends the job; the worker answers `DONE`.
- out: per batch a `TASK` header (start, end), one status byte per file and 32 bytes per file
  (the digest, or the errno in the first byte for `ERR`); `DONE` is a header with both fields
  set to `DONE_MARK`.

Files are read, never mapped: a mapped file truncated meanwhile would raise SIGBUS, and reading
into a buffer the size of the L2 cache is also faster here (a 2 GiB file: 1.19-1.28 s read in
256 KiB pieces, 1.36-1.46 s mapped 64 MiB at a time). At the end of its stdin the worker exits.
"""

from __future__ import annotations

import errno
import hashlib
import os
import signal
import stat
import struct
import sys
from collections.abc import Sequence

CHUNK = 256 << 10  # read buffer for large files streamed with readinto (fastest measured)
JOB, BATCH, END = 1, 2, 3
BIG = 1
IN = struct.Struct("<BIII")  # kind, a, b, payload bytes
JOB_ARGS = struct.Struct("<Q")  # large-file threshold
TASK = struct.Struct("<II")  # [start, end) indices of a batch's files
DONE_MARK = 0xFFFFFFFF
OK, ERR, LARGE_FILE, CHANGED, SPECIAL, ESCAPED = 0, 1, 2, 3, 4, 5
# Non-blocking open: a path swapped for a FIFO after the walk must not block the step (the
# checked path's fstat then refuses anything that is not a regular file).
OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
# A worker opens a file without following a symlink: the fast path reads no fstat, so a name
# swapped for a link to a device after the walk must not reach it (`Batcher._linked`).
NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class Changed(Exception):
    """The file's size or mtime changed while it was read."""


class NotRegular(Exception):
    """The path is a FIFO, socket or device."""


def digest_fd(
    fd: int,
    buf: bytearray | None,
    large: int,
    before: os.stat_result | None = None,
) -> bytes:
    """sha256 of an open file: a small one read whole, a large one in pieces into `buf` (reused).

    A large file is never held in memory at once.
    """
    before = before or os.fstat(fd)
    if not stat.S_ISREG(before.st_mode):
        raise NotRegular
    h = hashlib.sha256()
    size = 0
    if before.st_size <= large:
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
        raise Changed
    return h.digest()


class Batcher:
    """A worker's per-batch hashing: files opened relative to their (cached) directory."""

    def __init__(self, base: bytes, big: bool, large: int) -> None:
        self.base, self.big, self.large = base, big, large
        self.base_real = os.path.realpath(base)
        self.buf = bytearray(CHUNK) if big else None
        self.cur_dir: bytes | None = None
        self.dfd = -1

    def close(self) -> None:
        """Close the cached directory."""
        if self.dfd >= 0:
            os.close(self.dfd)
            self.dfd = -1

    def hash(self, start: int, rels: Sequence[bytes]) -> bytes:
        """One result record: header, one status byte per file, 32 bytes per file."""
        n = len(rels)
        status = bytearray(n)
        out: list[bytes] = []
        add = out.append
        large = self.large
        lseek, pread, sha256, open_, close = os.lseek, os.pread, hashlib.sha256, os.open, os.close
        end, flags = os.SEEK_END, OPEN_FLAGS | NOFOLLOW
        cur, dfd = self.cur_dir, self.dfd
        k = -1
        for rel in rels:
            k += 1
            dirname, _, name = rel.rpartition(b"/")
            try:
                if dirname != cur:  # openat() relative to the directory: shorter lookups
                    self.close()
                    self.cur_dir = cur = None
                    self.dfd = dfd = open_(
                        os.path.join(self.base, dirname), os.O_RDONLY | os.O_DIRECTORY
                    )
                    self.cur_dir = cur = dirname
                fd = open_(name, flags, dir_fd=dfd)
            except OSError as exc:
                if exc.errno == errno.ELOOP:  # a symlink: the walk's, or one swapped in since
                    add(self._linked(rel, k, status))
                    continue
                status[k] = ERR
                add(_errno(exc))
                continue
            try:
                # The common small file in two calls after the open: its size from lseek, one
                # pread of a byte more (a file that grew or shrank since reads another length).
                # No fstat: the walk saw a regular file; a pipe swapped in fails the lseek and
                # a character device reports size 0, and both take the checked path.
                try:
                    size = lseek(fd, 0, end)
                except OSError:
                    size = -1
                if 0 < size <= large:
                    try:
                        data = pread(fd, size + 1, 0)
                    except OSError as exc:
                        status[k] = ERR
                        add(_errno(exc))
                        continue
                    if len(data) == size:
                        add(sha256(data).digest())
                        continue
                    status[k] = CHANGED
                    add(bytes(32))
                    continue
                add(self._checked(fd, size >= 0, k, status))
            finally:
                close(fd)
        return TASK.pack(start, start + n) + status + b"".join(out)

    def _linked(self, rel: bytes, k: int, status: bytearray) -> bytes:
        """A symlink's target, hashed only if it resolves inside the base and is a regular file.

        As the walk requires, whether the link is the walk's or one swapped in since.
        """
        target = os.path.realpath(os.path.join(self.base, rel))
        if not (target == self.base_real or target.startswith(self.base_real + b"/")):
            status[k] = ESCAPED
            return bytes(32)
        try:
            fd = os.open(target, OPEN_FLAGS | NOFOLLOW)  # resolved: a link swapped in fails
        except OSError as exc:
            status[k] = ERR
            return _errno(exc)
        try:
            return self._checked(fd, False, k, status)
        finally:
            os.close(fd)

    def _checked(self, fd: int, moved: bool, k: int, status: bytearray) -> bytes:
        """The digest of a file off the fast path (or 32 bytes of error code, `status` set).

        `moved`: the fast path's lseek left the file at its end.
        """
        try:
            if moved:
                os.lseek(fd, 0, os.SEEK_SET)
            st = os.fstat(fd)
            if st.st_size > self.large and stat.S_ISREG(st.st_mode) and not self.big:
                status[k] = LARGE_FILE
                return bytes(32)
            return digest_fd(fd, self.buf, self.large, st)
        except Changed:
            status[k] = CHANGED
        except NotRegular:
            status[k] = SPECIAL
        except OSError as exc:
            status[k] = ERR
            return _errno(exc)
        return bytes(32)


def _errno(exc: OSError) -> bytes:
    """The 32 bytes sent for a file that failed with `exc`: its errno first."""
    return bytes([(exc.errno or 5) & 0xFF]) + bytes(31)


def write_all(fd: int, data: bytes | bytearray) -> None:
    """`os.write` until all of `data` is written."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def read_exact(fd: int, n: int) -> bytes:
    """`n` bytes from `fd`, fewer only at its end."""
    data = b""
    while len(data) < n:
        chunk = os.read(fd, n - len(data))
        if not chunk:
            break
        data += chunk
    return data


def serve(task_r: int, res_w: int) -> None:
    """Hash the files of each job read from `task_r` until it ends; results go to `res_w`."""
    batcher: Batcher | None = None
    while header := read_exact(task_r, IN.size):
        kind, a, _, size = IN.unpack(header)
        payload = read_exact(task_r, size)
        if len(payload) != size:
            break
        if kind == JOB:
            (large,) = JOB_ARGS.unpack_from(payload)
            batcher = Batcher(payload[JOB_ARGS.size :], bool(a & BIG), large)
        elif kind == BATCH and batcher is not None:
            write_all(res_w, batcher.hash(a, payload.split(b"\0")))
        elif kind == END and batcher is not None:
            batcher.close()
            batcher = None
            write_all(res_w, TASK.pack(DONE_MARK, DONE_MARK))
        else:
            raise ValueError(f"unexpected message {kind}")


def main() -> None:  # pragma: no cover - runs in the worker process, tested through `_pool`
    """Entry point of the worker process: serve stdin/stdout until stdin ends."""
    # Ctrl-C in the terminal reaches the whole process group: the caller decides what stops.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        serve(sys.stdin.fileno(), sys.stdout.fileno())
    except BaseException:  # noqa: BLE001 - the caller sees the closed pipe and the status
        os._exit(70)
    os._exit(0)


if __name__ == "__main__":  # pragma: no cover - the worker process
    main()
