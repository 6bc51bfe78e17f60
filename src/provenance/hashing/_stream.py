"""Walk and hash at once: worker processes hash the first files while the walk lists the rest.

For many small files the walk is a fifth of the work and the caller does it alone; handing each
batch of paths to a worker (`_pool`) as soon as it is listed overlaps the two. The walk hands
over a directory's paths at a time (`iter_collect_batches`): no Python step per file between
listing and sending. Paths arrive in walk order; they are sorted once at the end, their digests
with them. The walk lists in path order unless patterns overlap, so the link JSON of the files
can be rendered as the results come in (`render_json`); it is kept only if the order held and
no file needed another pass. Errors are the same as the walk-then-hash path's: a walk error
stops everything, else the first failed file in path order.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Iterator

from provenance.hashing import _engine, _pool
from provenance.hashing._artifacts import ArtifactSet, Rendering
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
) -> ArtifactSet:
    """The paths from the walk `found`, sorted, with their sha256 digests."""
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
    render_json: bool = False,
) -> ArtifactSet:
    """`hash_walked` of a walk that lists its paths in lists (a directory's at a time).

    `render_json`: also render the set's link JSON while the workers hash (see the module).
    """
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
        packed = hash_paths_packed(base, listed, progress=progress, fork_heavy=fork_heavy)
        return ArtifactSet.packed(listed, packed)
    clean = False
    out = bytearray()
    rendering = Rendering(paths, out) if render_json else None
    try:
        job = _pool.Job(
            ws,
            workers,
            base,
            big=False,
            out=out,
            progress=progress,
            large=_engine.LARGE,
            ready=None if rendering is None else rendering.upto,
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
    if results.large:
        rendering = None  # their digests come later, from threads
        _hash_threaded(base, paths, results.large, out, workers, progress)
    if all(map(operator.lt, paths, itertools.islice(paths, 1, None))):
        # The walk yields in order unless patterns overlap or names interleave.
        return ArtifactSet.packed(paths, out, None if rendering is None else rendering.json())
    order = sorted(range(len(paths)), key=paths.__getitem__)
    raw = bytes(out)
    packed = bytearray(b"".join([raw[32 * i : 32 * i + 32] for i in order]))
    return ArtifactSet.packed([paths[i] for i in order], packed)
