"""Engines hash a source's members in batches and hand each batch's lines to a sink.

`local`: this machine (provenance.hashing's worker processes; a few objects at a time for S3).
`ray`: Ray tasks on the cluster `RAY_ADDRESS` names, or a local one (datasets/_ray.py).
Either way a member that cannot be read stops everything with its name, before any manifest
is written.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable

from provenance._config import setting
from provenance.datasets._sources import (
    Advance,
    EngineStats,
    LocalSource,
    ObjectSource,
    Sink,
    hash_batch,
)
from provenance.errors import ArtifactError, UsageError

ENGINES = ("local", "ray")
LOCAL_BATCH = 20000  # members per call into the hashing engine: bounded memory, few calls


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
    while batch := list(itertools.islice(listing, LOCAL_BATCH)):
        lines, failed = hash_batch(source.spec, batch, parallel=True)
        if failed:
            raise ArtifactError(*failed)
        sink(lines)
        stats.batches += 1
        total += len(batch)
        advance(len(batch))
    set_total(total)
    return stats
