"""`start_workers`: a hashing worker started ahead of a job that will need one, never otherwise.

`provenance run` calls it before importing the recorder, so the worker's start-up overlaps the
imports. The worker is the pool's idle one: the next job reuses it (same process id).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from provenance.hashing import _engine, _pool, hash_artifacts, start_workers


@pytest.fixture(autouse=True)
def _no_idle_workers() -> Iterator[None]:
    _pool.shutdown()
    yield
    _pool.shutdown()


def test_a_directory_of_materials_starts_one_worker_that_the_job_reuses(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "data").mkdir()
    for i in range(6):
        (tmp_path / "data" / f"f{i}").write_bytes(b"x" * i)
    start_workers(tmp_path, ["data"])
    started = _pool.idle_pids()
    assert len(started) == 1
    monkeypatch.setattr(_engine, "POOL_MIN_FILES", 4)
    got = hash_artifacts(tmp_path, ["data"])
    assert len(got) == 6
    assert started[0] in _pool.idle_pids()  # the job ran on it and handed it back


def test_a_large_named_file_starts_one(tmp_path: Path) -> None:
    with open(tmp_path / "weights.bin", "wb") as f:
        f.truncate(_engine.HEAVY)  # sparse: no disk used
    start_workers(str(tmp_path), ["weights.bin"])
    assert len(_pool.idle_pids()) == 1


def test_a_few_small_named_files_or_none_start_no_worker(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("x")
    start_workers(tmp_path, ["a.txt", "missing.bin"])
    start_workers(tmp_path, [])
    start_workers(tmp_path, ["s3://bucket/data/"])  # objects are read over the network
    assert _pool.idle_pids() == []


def test_invalid_patterns_start_nothing_and_leave_the_error_to_the_recorder(tmp_path: Path) -> None:
    start_workers(tmp_path, ["../outside"])
    start_workers(tmp_path, ["data/[x"])
    assert _pool.idle_pids() == []
    assert not os.listdir(tmp_path)
