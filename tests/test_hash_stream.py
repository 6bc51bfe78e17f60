"""Walking and hashing at once (many files): the same artifacts and the same refusals as before.

Thresholds are lowered so a few files take the streamed, forked path; each test also checks that
no hashing worker is left behind.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import psutil
import pytest

from provenance.errors import ArtifactError
from provenance.hashing import (
    Cancelled,
    _engine,
    collect,
    compile_patterns,
    hash_artifacts,
    hash_paths_packed,
)
from provenance.hashing._stream import hash_walked
from provenance.hashing._walk import Excludes


@pytest.fixture(autouse=True)
def _streamed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_engine, "FORK_MIN_FILES", 4)
    monkeypatch.setattr(_engine, "BATCH", 3)
    monkeypatch.setattr(_engine, "LARGE", 1000)


def _no_workers_left() -> bool:
    return not psutil.Process().children(recursive=True)


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


def test_a_mapped_file_truncated_under_a_worker_is_reported_as_changed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Heavy files are hashed through mmap in a forked worker: truncation kills it with SIGBUS."""
    victim = tmp_path / "victim.bin"
    victim.write_bytes(os.urandom(3 << 20))
    monkeypatch.setattr(_engine, "HEAVY", 1)
    real_sha256 = hashlib.sha256

    class Truncating:
        def __init__(self) -> None:
            self.h = real_sha256()

        def update(self, data: bytes) -> None:
            if len(data) > 1 << 20:  # the mapped window: cut the file under it
                os.truncate(victim, 0)
            self.h.update(data)

        def digest(self) -> bytes:
            return self.h.digest()

    monkeypatch.setattr(_engine.hashlib, "sha256", Truncating)
    with pytest.raises(ArtifactError, match=r"victim\.bin.*changed while it was being hashed"):
        hash_paths_packed(str(tmp_path), ["victim.bin"], workers=2, fork_heavy=True)
    assert _no_workers_left()


def test_heavy_files_hashed_through_mmap_in_windows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_engine, "HEAVY", 1)
    monkeypatch.setattr(_engine, "MAP_WINDOW", 1 << 20)
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
