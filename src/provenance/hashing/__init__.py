"""The one hashing engine: walk patterns under a base dir, hash every match with sha256."""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from provenance.errors import ProvenanceError
from provenance.hashing import _engine, _pool
from provenance.hashing import _objects as objects  # s3:// artifacts: hashing/_objects.py
from provenance.hashing._artifacts import ArtifactSet
from provenance.hashing._background import Background, Cancelled
from provenance.hashing._engine import Progress, hash_file, hash_paths, hash_paths_packed
from provenance.hashing._paths import check_relative, is_safe_relative, unsafe_paths
from provenance.hashing._patterns import Excludes, Pattern, check_glob, compile_patterns, has_glob
from provenance.hashing._stream import hash_walked_batches
from provenance.hashing._walk import (
    Inventory,
    collect,
    iter_collect,
    iter_collect_batches,
    printable,
    walk_all,
)

if TYPE_CHECKING:
    from provenance.hashing._manifest import DIGEST_SCHEME, Change, Diff, Manifest

__all__ = [
    "DIGEST_SCHEME",
    "ArtifactSet",
    "Background",
    "Cancelled",
    "Change",
    "Diff",
    "Manifest",
    "Excludes",
    "Inventory",
    "Pattern",
    "Progress",
    "check_glob",
    "check_relative",
    "collect",
    "compile_patterns",
    "has_glob",
    "iter_collect",
    "hash_artifacts",
    "hash_file",
    "hash_paths",
    "hash_paths_packed",
    "is_safe_relative",
    "printable",
    "start_workers",
    "unsafe_paths",
    "walk_all",
    "objects",
]


_MANIFEST = ("DIGEST_SCHEME", "Change", "Diff", "Manifest")  # for verification and the gate


def __getattr__(name: str) -> Any:
    """The file-manifest names, imported on first use (recording a step needs none of them)."""
    if name in _MANIFEST:
        from provenance.hashing import _manifest

        value = globals()[name] = getattr(_manifest, name)
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def start_workers(base: str | os.PathLike[str], patterns: Sequence[str]) -> None:
    """Start a hashing worker ahead of hashing `patterns` under `base`, if it will be needed.

    Its start-up (a fresh interpreter, ~20 ms) then overlaps the caller's own. None is started
    when the patterns name only a few small files, which are hashed in the caller's process;
    nor for invalid patterns (the caller's own checks report them). Nothing else changes: a job
    that needs no worker leaves it idle until the process exits, one that needs more starts
    the rest.
    """
    try:
        local = objects.local_patterns(patterns)
        compile_patterns(local)
    except ProvenanceError:
        return
    if local and not _few_small_files(os.fspath(base), local):
        _pool.prestart(1)


def _few_small_files(base: str, patterns: list[str]) -> bool:
    """True when every pattern names one file (or nothing) and together they are small."""
    total = 0
    for pat in patterns:
        if has_glob(pat):
            return False
        try:
            st = os.stat(os.path.join(base, pat))
        except (OSError, ValueError):
            continue  # matches nothing
        if not stat.S_ISREG(st.st_mode):
            return False
        total += st.st_size
    return len(patterns) < _engine.POOL_MIN_FILES and total < _engine.HEAVY


def hash_artifacts(
    base: str | os.PathLike[str],
    patterns: Sequence[str],
    excludes: Iterable[str] = Excludes.DEFAULT,
    *,
    progress: Progress | None = None,
    on_total: Callable[[int], None] | None = None,
    fork_heavy: bool = False,
    render_json: bool = False,
) -> ArtifactSet:
    """Hash every file under `base` that `patterns` select, minus `excludes`.

    `render_json`: when worker processes hash the files, the set's link JSON is also written
    meanwhile (`ArtifactSet.take_json`), so the payload need not wait for it afterwards.
    """
    base = os.fspath(base)
    found = iter_collect_batches(base, compile_patterns(patterns), Excludes(excludes))
    return hash_walked_batches(
        base,
        found,
        progress=progress,
        on_total=on_total,
        fork_heavy=fork_heavy,
        render_json=render_json,
    )
