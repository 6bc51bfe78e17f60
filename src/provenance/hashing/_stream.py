"""Walk and hash at once: worker processes hash the first files while the walk lists the rest.

For many small files the walk is a fifth of the work and the caller does it alone; handing each
batch of paths to a worker (`_pool`) as soon as it is listed overlaps the two. The walk hands
over a directory's paths at a time (`iter_collect_batches`): no Python step per file between
listing and sending. Paths arrive in
walk order; they are sorted once at the end, their digests with them. Errors are the same as the
walk-then-hash path's: a walk error stops everything, else the first failed file in path order.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Iterator

from provenance.hashing import _engine, _pool
from provenance.hashing._engine import (
    Progress,
    _cpu_count,
    _hash_threaded,
    check_results,
    hash_paths_packed,
)


def hash_walked(
    base: str,
    found: Iterator[str],
    *,
    progress: Progress | None = None,
    on_total: Callable[[int], None] | None = None,
    fork_heavy: bool = False,
) -> tuple[list[str], bytearray]:
    """Sorted paths from the walk `found` and their sha256 digests packed in the same order."""
    chunks = iter(lambda: list(itertools.islice(found, _engine.BATCH)), [])
    return hash_walked_batches(
        base, chunks, progress=progress, on_total=on_total, fork_heavy=fork_heavy
    )


def hash_walked_batches(
    base: str,
    found: Iterator[list[str]],
    *,
    progress: Progress | None = None,
    on_total: Callable[[int], None] | None = None,
    fork_heavy: bool = False,
) -> tuple[list[str], bytearray]:
    """`hash_walked` of a walk that lists its paths in lists (a directory's at a time)."""
    paths: list[str] = []
    for chunk in found:
        paths += chunk
        if len(paths) >= _engine.POOL_MIN_FILES:
            break
    workers = _cpu_count()
    ws = None
    if len(paths) >= _engine.POOL_MIN_FILES and workers >= 2 and _pool.available():
        ws = _pool.acquire(workers)
    if ws is None:
        listed = sorted(itertools.chain(paths, itertools.chain.from_iterable(found)))
        if on_total:
            on_total(len(listed))
        return listed, hash_paths_packed(base, listed, progress=progress, fork_heavy=fork_heavy)
    clean = False
    try:
        job = _pool.Job(
            ws,
            workers,
            base,
            big=False,
            out=bytearray(),
            progress=progress,
            large=_engine.LARGE,
        )
        sent, batch = 0, _engine.BATCH

        def send_full_batches() -> None:
            nonlocal sent
            while len(paths) - sent >= batch:
                job.send(sent, paths[sent : sent + batch])
                sent += batch

        send_full_batches()
        for chunk in found:
            paths += chunk
            send_full_batches()
        if sent < len(paths):
            job.send(sent, paths[sent:])
        if on_total:
            on_total(len(paths))
        results = job.finish()
        clean = True
    finally:
        _pool.release(ws, clean)
    check_results(base, paths, results.errors)
    out = results.out
    _hash_threaded(base, paths, results.large, out, workers, progress)
    return _sorted(paths, out)


def _sorted(paths: list[str], out: bytearray) -> tuple[list[str], bytearray]:
    if all(map(operator.lt, paths, itertools.islice(paths, 1, None))):
        return paths, out  # the walk yields in order unless patterns overlap or names interleave
    order = sorted(range(len(paths)), key=paths.__getitem__)
    raw = bytes(out)
    packed = bytearray(b"".join([raw[32 * i : 32 * i + 32] for i in order]))
    return [paths[i] for i in order], packed
