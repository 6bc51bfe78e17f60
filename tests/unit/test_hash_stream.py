"""Walking and hashing at once (many files): the same artifacts and the same refusals as before.

Thresholds are lowered so a few files take the streamed path through the worker processes; each
test also checks that no hashing worker is left behind but the idle ones the next job reuses.
"""

from __future__ import annotations

import hashlib
import os
import sys
from pathlib import Path

import psutil
import pytest

from provenance.errors import ArtifactError
from provenance.hashing import (
    Cancelled,
    _engine,
    _pool,
    _worker,
    collect,
    compile_patterns,
    hash_artifacts,
    hash_paths_packed,
)
from provenance.hashing._stream import hash_walked
from provenance.hashing._walk import Excludes


@pytest.fixture(autouse=True)
def _streamed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_engine, "POOL_MIN_FILES", 4)
    monkeypatch.setattr(_engine, "BATCH", 3)
    monkeypatch.setattr(_engine, "LARGE", 1000)


def _no_workers_left() -> bool:
    """No hashing worker but the idle ones kept for the next job (a failed job kills its own).

    Other children of the test process (a server another test module started) are not ours.
    """
    workers = {c.pid for c in _hashing_workers()}
    return workers <= set(_pool.idle_pids())


def _hashing_workers() -> list[psutil.Process]:
    found = []
    for child in psutil.Process().children(recursive=True):
        try:
            if _worker.__file__ in child.cmdline():
                found.append(child)
        except psutil.Error:  # exited meanwhile
            continue
    return found


def _tree(base: Path) -> dict[str, bytes]:
    """Names whose order differs between a walk and a sort ('a-b' < 'a.b' < 'a/…')."""
    files = {
        "a-b": b"1",
        "a.b": b"",
        "a-c/x": b"x",  # listed after "a.b" by the walk, sorted before it
        "a/b": b"x" * 5000,  # above LARGE: handed back to the parent's threads
        "a/c/d": b"d",
        "z/é/日本.txt": "語".encode(),
        "big.bin": os.urandom(3 * 1024 * 1024),
        **{f"d{i % 3}/f{i:03d}": str(i).encode() * (i % 7) for i in range(40)},
    }
    for rel, data in files.items():
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / rel).write_bytes(data)
    (base / "link.bin").symlink_to("a/c/d")  # a link inside the base: hashed as its target
    files["link.bin"] = b"d"
    return files


def test_streamed_hashing_gives_the_sorted_artifacts_of_walk_then_hash(tmp_path: Path) -> None:
    files = _tree(tmp_path)
    got = hash_artifacts(tmp_path, ["."])
    assert list(got.digests) == sorted(files)
    assert got.digests == {rel: hashlib.sha256(data).hexdigest() for rel, data in files.items()}
    assert got.to_json() == hash_artifacts(tmp_path, sorted(files)).to_json()
    assert _no_workers_left()


def test_a_fifo_found_mid_walk_is_refused_by_name_and_stops_the_workers(tmp_path: Path) -> None:
    _tree(tmp_path)
    os.mkfifo(tmp_path / "d1" / "pipe")
    with pytest.raises(ArtifactError, match=r"d1/pipe.*FIFO"):
        hash_artifacts(tmp_path, ["."])
    assert _no_workers_left()


def test_a_name_that_is_not_utf8_is_refused_by_name(tmp_path: Path) -> None:
    _tree(tmp_path)
    (tmp_path / "d2").joinpath(os.fsdecode(b"bad\xff")).write_bytes(b"x")
    with pytest.raises(ArtifactError, match=r"d2/bad\\xff.*not valid UTF-8"):
        hash_artifacts(tmp_path, ["."])
    assert _no_workers_left()


def test_files_gone_after_the_walk_report_the_first_in_path_order(tmp_path: Path) -> None:
    files = _tree(tmp_path)
    walked = [*sorted(files, reverse=True), "zz-gone", "b-gone"]
    with pytest.raises(ArtifactError, match=r"b-gone.*cannot read: No such file"):
        hash_walked(str(tmp_path), iter(walked))
    assert _no_workers_left()


def test_cancelled_hashing_reaps_its_workers(tmp_path: Path) -> None:
    _tree(tmp_path)

    def progress(n: int) -> None:
        raise Cancelled

    with pytest.raises(Cancelled):
        hash_artifacts(tmp_path, ["."], progress=progress)
    assert _no_workers_left()


def test_walk_yields_sorted_paths_and_collect_matches_it(tmp_path: Path) -> None:
    files = _tree(tmp_path)
    got = collect(str(tmp_path), compile_patterns(["."]), Excludes(Excludes.DEFAULT))
    assert got == sorted(files)


# A worker whose sha256 truncates the file named by argv[2] once it is handed a large file's first
# piece: the real worker code in its own process, run by the real pool; only the timing is
# arranged.
TRUNCATING_WORKER = """
import importlib.util, os, sys
spec = importlib.util.spec_from_file_location("_worker", sys.argv[1])
w = importlib.util.module_from_spec(spec)
spec.loader.exec_module(w)
real = w.hashlib.sha256

class Truncating:
    def __init__(self, data=b""):
        self.h = real(data)

    def update(self, data):
        if len(data) >= w.CHUNK:  # a large file's piece: cut the file while it is read
            os.truncate(sys.argv[2], 0)
        self.h.update(data)

    def digest(self):
        return self.h.digest()

class Hashlib:
    sha256 = Truncating

w.hashlib = Hashlib
w.main()
"""


def test_a_heavy_file_truncated_while_a_worker_reads_it_is_reported_as_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Heavy files are read by a worker process (never mapped): the worker lives on."""
    victim = tmp_path / "victim.bin"
    victim.write_bytes(os.urandom(3 << 20))
    monkeypatch.setattr(_engine, "HEAVY", 1)
    monkeypatch.setattr(_engine, "LARGE", 1 << 20)  # read in pieces, not whole
    _pool.shutdown()  # the next job starts its workers with the argv below
    argv = [sys.executable, "-I", "-S", "-c", TRUNCATING_WORKER, _worker.__file__, str(victim)]
    monkeypatch.setattr(_pool, "worker_argv", lambda: argv)
    try:
        with pytest.raises(ArtifactError, match=r"victim\.bin.*changed while it was being hashed"):
            hash_paths_packed(str(tmp_path), ["victim.bin"], workers=2, fork_heavy=True)
        assert victim.stat().st_size == 0  # it was truncated while it was read
        assert _pool.idle_pids()  # no worker died of it: the set is kept for the next job
    finally:
        _pool.shutdown()  # no worker started with this argv serves a later test
    assert _no_workers_left()


def test_heavy_files_hashed_by_workers_in_pieces(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_engine, "HEAVY", 1)
    monkeypatch.setattr(_engine, "LARGE", 1 << 20)  # above it: read in CHUNK pieces
    files = {f"m{i}.bin": os.urandom((3 << 20) + i) for i in range(3)}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    got = hash_paths_packed(str(tmp_path), list(files), workers=2, fork_heavy=True)
    assert got == b"".join(hashlib.sha256(d).digest() for d in files.values())


def test_overlapping_patterns_list_each_file_once_in_order(tmp_path: Path) -> None:
    files = _tree(tmp_path)
    got = hash_artifacts(tmp_path, ["d1/**", "d0", "**/*", "a-c/x"])
    assert list(got.digests) == sorted(files)
    assert got.digests == {rel: hashlib.sha256(data).hexdigest() for rel, data in files.items()}


def _small_tree(base: Path, n: int = 60) -> dict[str, bytes]:
    files = {f"d{i % 4}/f{i:03d}": str(i).encode() * (i % 9) for i in range(n)}
    for rel, data in files.items():
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / rel).write_bytes(data)
    return files


def test_json_rendered_while_the_workers_hash_is_the_sets_canonical_json(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from provenance._fs import canonical_json
    from provenance.hashing import _artifacts

    monkeypatch.setattr(_artifacts, "_RENDER_MIN", 2)  # many pieces, as batches come in
    files = _small_tree(tmp_path)
    got = hash_artifacts(tmp_path, ["."], render_json=True)
    json = got.take_json()
    assert json is not None
    assert json == canonical_json(
        {rel: {"sha256": hashlib.sha256(data).hexdigest()} for rel, data in files.items()}
    )
    assert json == hash_artifacts(tmp_path, ["."]).to_json()
    assert _no_workers_left()


def test_json_is_not_rendered_early_when_the_walk_is_out_of_order_or_files_are_large(
    tmp_path: Path,
) -> None:
    """Out-of-order walks ('a-c/x' after 'a.b') and large files (digests from threads later)
    give no early JSON; the set is still sorted and its JSON still canonical."""
    from provenance._fs import canonical_json

    files = _tree(tmp_path)
    got = hash_artifacts(tmp_path, ["."], render_json=True)
    assert got.take_json() is None
    assert list(got.digests) == sorted(files)
    assert got.to_json() == canonical_json(got.as_in_toto())
    (tmp_path / "a" / "b").unlink()
    (tmp_path / "big.bin").unlink()
    (tmp_path / "a-c" / "x").unlink()  # the large and the out-of-order files gone
    (tmp_path / "a-c").rmdir()
    (tmp_path / "link.bin").unlink()
    got = hash_artifacts(tmp_path, ["."], render_json=True)
    assert got.take_json() == canonical_json(got.as_in_toto())
    overlapping = hash_artifacts(tmp_path, ["d1/**", "d0/**"], render_json=True)
    assert overlapping.take_json() is None  # d1's files listed before d0's
    assert list(overlapping.digests) == sorted(overlapping.digests)
    assert _no_workers_left()


def test_the_pools_frontier_moves_only_over_batches_all_in_and_stops_at_a_failure() -> None:
    """Batches finish out of order: `ready(n)` names the files [0, n) that are all in, and is
    no longer called once a file failed (its digest slot holds an errno, not a digest)."""
    from provenance.hashing._worker import ERR, OK, TASK

    def record(start: int, end: int, status: int = OK) -> bytes:
        n = end - start
        return TASK.pack(start, end) + bytes([status] * n) + bytes([start]) * 32 * n

    seen: list[int] = []
    results = _pool.Results(bytearray(32 * 12), None, seen.append)
    r, w = os.pipe()
    try:
        buf = bytearray()
        for rec in (record(3, 6), record(0, 3), record(9, 12), record(6, 9, ERR)):
            os.write(w, rec)
            assert results.read(r, buf) is not None
    finally:
        os.close(r)
        os.close(w)
    assert seen == [6]  # 3..6 waited for 0..3; 6..9 failed: 12 is never reported
    assert results.frontier == 12
    assert [e[0] for e in results.errors] == [6, 7, 8]
