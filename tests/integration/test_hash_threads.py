"""Hashing inside a busy training process: no fork, no deadlock, the same digests as hashlib.

A forked child of a process whose other threads hold a lock (logging's, a handler's, OpenSSL's)
deadlocks when it needs that lock. The hashing workers are fresh interpreters instead; these
tests record real steps in a process whose other threads hold those locks, and check every
hashing path against plain hashlib, including files that change while they are hashed.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

from provenance.errors import ArtifactError
from provenance.hashing import _engine, _pool, _worker, hash_artifacts, hash_paths
from provenance.signing import generate

SRC = Path(__file__).resolve().parents[2] / "src" / "provenance"

# Run with `python -c` (a __main__ nothing can import) in a process whose other threads hold
# logging's module lock, a handler's lock and a library lock most of the time, log, and hash in a
# loop, while a step records 2,100 materials (the streamed worker path) and heavy products
# (read by the workers in pieces). Each round starts the workers afresh, under that load. The forking
# engine this replaced hangs here on its first fork; a timeout is the failure detector.
BUSY_STEP = """
import hashlib, json, logging, os, sys, threading, time

base, rounds = sys.argv[1], int(sys.argv[2])
logging.basicConfig(filename=os.path.join(base, "busy.log"), level=logging.INFO)
handler = logging.getLogger().handlers[0]
stop = threading.Event()


def hold_logging_locks():
    while not stop.is_set():
        with logging._lock, handler.lock:
            hashlib.sha256(b"x" * 65536).digest()
            time.sleep(0.002)


def log_busily():
    n = 0
    while not stop.is_set():
        logging.getLogger("busy").info("line %d", n)
        n += 1


def hash_busily():
    data = os.urandom(1 << 20)
    while not stop.is_set():
        hashlib.sha256(data).digest()
        hashlib.sha256(b"small").hexdigest()


# Stands for a C library's lock that is not reset at fork (an OpenMP or CUDA runtime's): a child
# forked in Python runs the at-fork hooks, needs it, and it stays held there forever.
library_lock = threading.Lock()


def hold_library_lock():
    while not stop.is_set():
        with library_lock:
            time.sleep(0.01)


os.register_at_fork(after_in_child=library_lock.acquire)
for target in (hold_logging_locks, hold_library_lock, log_busily, hash_busily, hash_busily):
    threading.Thread(target=target, daemon=True).start()

import provenance
from provenance.hashing import _engine, _pool, _stream

_engine._cpu_count = _stream._cpu_count = lambda: 2  # two workers on any machine
_engine.HEAVY = 1 << 20  # three 512 KiB products take the heavy path ...
_engine.LARGE = 256 << 10  # ... and are read by the workers in pieces
workers = []
for r in range(rounds):
    _pool.shutdown()  # this round's step starts its workers while the locks are held

    @provenance.step(
        "train",
        materials=["data/**"],
        products=["model/**"],
        key=os.path.join(base, "keys", "k"),
        base_dir=base,
        links_dir=f"links-{r}",
        quiet=True,
    )
    def train():
        logging.getLogger("train").info("training")
        os.makedirs(os.path.join(base, "model"), exist_ok=True)
        for i in range(3):
            with open(os.path.join(base, "model", f"w{i}.bin"), "wb") as f:
                f.write(bytes([i]) * (512 << 10) + str(r).encode())

    train()
    workers.append(_pool.idle_pids())
stop.set()
print(json.dumps(workers))
"""


def _payload(link: Path) -> dict:
    return json.loads(base64.b64decode(json.loads(link.read_bytes())["payload"]))


def _reference(base: Path, under: str) -> dict[str, str]:
    return {
        p.relative_to(base).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in (base / under).rglob("*")
        if p.is_file()
    }


def test_a_step_records_while_other_threads_hold_the_logging_lock_and_hash(
    tmp_path: Path,
) -> None:
    """20 recordings, each starting its workers under load; a hang is caught by the timeout."""
    for i in range(2100):
        path = tmp_path / "data" / f"d{i % 7}" / f"f{i:05d}.bin"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(os.urandom(i % 5 * 700))  # empty files included
    generate("k", str(tmp_path / "keys"))
    env = {**os.environ, "PROVENANCE_RUN_ID": "busy", "CI": "true"}
    per_process, processes = 5, 4
    for p in range(processes):
        proc = subprocess.run(
            [sys.executable, "-c", BUSY_STEP, str(tmp_path), str(per_process)],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,  # the failure detector: a deadlocked worker never finishes
            check=False,
        )
        assert proc.returncode == 0, proc.stderr[-3000:]
        started = json.loads(proc.stdout)
        assert len(started) == per_process and all(len(pids) == 2 for pids in started)
        materials = {k: {"sha256": v} for k, v in _reference(tmp_path, "data").items()}
        products = {k: {"sha256": v} for k, v in _reference(tmp_path, "model").items()}
        assert len(materials) == 2100 and len(products) == 3
        (link,) = (tmp_path / f"links-{per_process - 1}").glob("train.*.link")
        assert _payload(link)["materials"] == materials, f"process {p}"
        assert _payload(link)["products"] == products, f"process {p}"


def _files(base: Path) -> dict[str, bytes]:
    files = {
        "empty": b"",
        "one": b"1",
        "small": os.urandom(3000),
        "at-large": os.urandom(4096),  # exactly LARGE: read whole
        "above-large": os.urandom(4097),
        "large": os.urandom(3 * _engine.CHUNK + 17),  # streamed in CHUNKs
        **{f"many/f{i}": os.urandom(i % 3 * 50) for i in range(20)},
    }
    for rel, data in files.items():
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / rel).write_bytes(data)
    return files


@pytest.mark.parametrize(
    ("path", "workers", "heavy"),
    [("threads", 1, False), ("many files", 2, False), ("heavy files", 2, True)],
)
def test_digests_equal_hashlib_on_every_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, path: str, workers: int, heavy: bool
) -> None:
    monkeypatch.setattr(_engine, "LARGE", 4096)
    monkeypatch.setattr(_engine, "POOL_MIN_FILES", 4)
    monkeypatch.setattr(_engine, "HEAVY", 1)
    files = _files(tmp_path)
    if heavy:
        files = {k: v for k, v in files.items() if "/" not in k}  # a few files, not many
    got = hash_paths(str(tmp_path), list(files), workers=workers, fork_heavy=heavy)
    assert got == [hashlib.sha256(d).digest() for d in files.values()]
    walked = hash_artifacts(tmp_path, ["**"]).digests
    assert walked == {k: hashlib.sha256(v).hexdigest() for k, v in _files_on_disk(tmp_path)}


def _files_on_disk(base: Path) -> list[tuple[str, bytes]]:
    return [
        (p.relative_to(base).as_posix(), p.read_bytes()) for p in base.rglob("*") if p.is_file()
    ]


def test_a_file_truncated_while_a_thread_hashes_it_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The caller's threads read large files into a buffer: a truncation is a message."""
    victim = tmp_path / "victim.bin"
    victim.write_bytes(os.urandom(3 << 20))
    monkeypatch.setattr(_engine, "LARGE", 1 << 20)
    real = hashlib.sha256

    class Truncating:
        def __init__(self, data: bytes = b"") -> None:
            self.h = real(data)

        def update(self, data: bytes) -> None:
            os.truncate(victim, 1000)
            self.h.update(data)

        def digest(self) -> bytes:
            return self.h.digest()

    monkeypatch.setattr(_worker.hashlib, "sha256", Truncating)
    with pytest.raises(ArtifactError, match=r"victim\.bin.*changed while it was being hashed"):
        hash_paths(str(tmp_path), ["victim.bin"], workers=2, fork_heavy=False)
    assert victim.stat().st_size == 1000


# A worker in which the file named by argv[2] grows between its size and its read (lseek, then
# one pread): it changes while it is hashed.
GROWING_WORKER = """
import importlib.util, os, sys
spec = importlib.util.spec_from_file_location("_worker", sys.argv[1])
w = importlib.util.module_from_spec(spec)
spec.loader.exec_module(w)
real_pread = os.pread


def pread(fd, n, offset):
    if os.fstat(fd).st_ino == os.stat(sys.argv[2]).st_ino:
        with open(sys.argv[2], "ab") as f:
            f.write(b"more")
    return real_pread(fd, n, offset)


w.os.pread = pread
w.main()
"""


def test_a_file_changed_while_a_worker_hashes_it_is_reported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_engine, "POOL_MIN_FILES", 4)
    for i in range(6):
        (tmp_path / f"f{i}").write_bytes(b"x" * 100)
    victim = tmp_path / "f3"
    _pool.shutdown()
    argv = [sys.executable, "-I", "-S", "-c", GROWING_WORKER, _worker.__file__, str(victim)]
    monkeypatch.setattr(_pool, "worker_argv", lambda: argv)
    try:
        with pytest.raises(ArtifactError, match=r"f3.*changed while it was being hashed"):
            hash_paths(str(tmp_path), [f"f{i}" for i in range(6)], workers=2)
    finally:
        _pool.shutdown()  # no worker started with this argv serves a later test


def test_workers_are_fresh_isolated_interpreters_reused_across_jobs(tmp_path: Path) -> None:
    files = [f"f{i}" for i in range(_engine.POOL_MIN_FILES)]
    for name in files:
        (tmp_path / name).write_bytes(name.encode())
    _pool.shutdown()
    hash_paths(str(tmp_path), files, workers=2)
    first = _pool.idle_pids()
    assert len(first) == 2
    for pid in first:
        proc = psutil.Process(pid)
        assert proc.ppid() == os.getpid()
        assert proc.cmdline()[1:] == ["-I", "-S", _worker.__file__]
    hash_paths(str(tmp_path), files, workers=2)
    assert _pool.idle_pids() == first  # started once, reused
    _pool.shutdown()
    left = []
    for child in psutil.Process().children(recursive=True):
        try:
            if _worker.__file__ in child.cmdline():
                left.append(child)
        except psutil.Error:  # exited meanwhile
            continue
    assert not left


def test_nothing_in_the_package_forks_the_calling_process() -> None:
    offenders = [
        f"{path.relative_to(SRC)}:{n}"
        for path in SRC.rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if "os.fork" in line or "forkpty" in line or 'get_context("fork")' in line
    ]
    assert offenders == []


def test_a_worker_killed_while_idle_is_replaced_by_the_next_job(tmp_path: Path) -> None:
    files = [f"f{i}" for i in range(_engine.POOL_MIN_FILES)]
    for name in files:
        (tmp_path / name).write_bytes(name.encode())
    hash_paths(str(tmp_path), files, workers=2)
    victim = _pool.idle_pids()[0]
    os.kill(victim, signal.SIGKILL)
    psutil.Process(victim).wait(10)
    got = hash_paths(str(tmp_path), files, workers=2)
    assert got == [hashlib.sha256(name.encode()).digest() for name in files]
    assert victim not in _pool.idle_pids() and len(_pool.idle_pids()) == 2
