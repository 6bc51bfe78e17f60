"""Engines hash a source's members in batches and hand each batch's lines to a sink.

`local`: this machine (provenance.hashing's worker processes; a few objects at a time for S3).
`ray`: Ray tasks on the cluster `RAY_ADDRESS` names, or a local one (datasets/_ray.py).
Either way a member that cannot be read stops everything with its name, before any manifest
is written. `hash_patterns` gives a step's plain artifact patterns the same choice.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterable, Sequence

from provenance._config import setting
from provenance.datasets._format import escape
from provenance.datasets._sources import (
    Advance,
    EngineStats,
    LocalSource,
    ObjectSource,
    PathsSource,
    Sink,
    hash_batch,
)
from provenance.errors import ArtifactError, UsageError
from provenance.hashing import (
    ArtifactSet,
    Excludes,
    Progress,
    compile_patterns,
    hash_artifacts,
    iter_collect,
)

ENGINES = ("local", "ray")
LOCAL_BATCH = 20000  # members per call into the hashing engine: bounded memory, few calls
# Objects are read a few at a time whatever the batch, and each one in flight costs a few KB
# of futures and client state: a small batch keeps the driver's memory flat (measured: 20,000
# objects per batch peaked at 130 MiB RSS, 1,000 at ~90 MiB).
OBJECT_BATCH = 1000


def choose(explicit: str | None) -> str:
    """The engine: explicit > PROVENANCE_ENGINE > `[tool.provenance] engine` > local."""
    name = setting("engine", explicit) or "local"
    if name not in ENGINES:
        raise UsageError(f"unknown engine {name!r} (expected one of: {', '.join(ENGINES)})")
    return name


def run(
    engine: str,
    source: LocalSource | ObjectSource,
    sink: Sink,
    advance: Advance,
    set_total: Callable[[int], None],
) -> EngineStats:
    """Hash every member of `source` with `engine`, feeding `sink` batch by batch."""
    if engine == "ray":
        from provenance.datasets import _ray

        return _ray.run(source, sink, advance, set_total)
    stats = EngineStats("local")
    listing = (name for name, _ in source.listing(sizes=False))
    total = 0
    size = OBJECT_BATCH if isinstance(source, ObjectSource) else LOCAL_BATCH
    while batch := list(itertools.islice(listing, size)):
        lines, failed = hash_batch(source.spec, batch, parallel=True)
        if failed:
            raise ArtifactError(*failed)
        sink(lines)
        stats.batches += 1
        total += len(batch)
        advance(len(batch))
    set_total(total)
    return stats


def hash_patterns(
    engine: str,
    base: str | os.PathLike[str],
    patterns: Sequence[str],
    excludes: Iterable[str],
    *,
    progress: Progress | None = None,
    on_total: Callable[[int], None] | None = None,
    render_json: bool = False,
) -> ArtifactSet:
    """The files `patterns` select under `base`, minus `excludes`, hashed by `engine`.

    `local` is provenance.hashing's `hash_artifacts` (`render_json` is passed to it). `ray`
    walks the same way (the same files, the same refusals of unsafe paths) and hashes the
    matches as Ray tasks with the batch function the dataset manifests use: the digests are the
    local engine's, by construction and by test. A file that cannot be read fails the whole set
    with its name.
    """
    if engine != "ray":
        return hash_artifacts(
            base,
            patterns,
            excludes,
            progress=progress,
            on_total=on_total,
            fork_heavy=True,
            render_json=render_json,
        )
    base = os.fspath(base)
    paths = sorted(iter_collect(base, compile_patterns(patterns), Excludes(excludes)))
    if not paths:
        if on_total:
            on_total(0)
        return ArtifactSet()
    digests: dict[bytes, bytes] = {}

    def sink(lines: list[bytes]) -> None:
        for line in lines:
            name, _size, rest = line.split(b"\t", 2)
            digests[name] = bytes.fromhex(rest[:64].decode("ascii"))

    run(
        "ray",
        PathsSource(base, tuple(paths)),
        sink,
        progress or (lambda _n: None),
        on_total or (lambda _n: None),
    )
    packed = bytearray(32 * len(paths))
    for i, rel in enumerate(paths):
        packed[32 * i : 32 * i + 32] = digests[escape(rel).encode("utf-8")]
    return ArtifactSet.packed(paths, packed)
