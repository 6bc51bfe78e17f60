"""The one hashing engine: walk patterns under a base dir, hash every match with sha256."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from provenance.hashing._background import Background, Cancelled
from provenance.hashing._engine import Progress, hash_file, hash_paths
from provenance.hashing._manifest import DIGEST_SCHEME, Change, Diff, Manifest
from provenance.hashing._paths import check_relative, is_safe_relative, unsafe_paths
from provenance.hashing._patterns import Excludes, Pattern, check_glob, compile_patterns, has_glob
from provenance.hashing._walk import Inventory, collect, printable, walk_all

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
    "hash_artifacts",
    "hash_file",
    "hash_paths",
    "is_safe_relative",
    "printable",
    "unsafe_paths",
    "walk_all",
]


@dataclass
class ArtifactSet:
    """Relative POSIX path -> sha256 hex digest, for the files some patterns selected."""

    digests: dict[str, str] = field(default_factory=dict)

    def as_in_toto(self) -> dict[str, dict[str, str]]:
        """The in-toto link form: path -> {"sha256": digest}."""
        return {path: {"sha256": hexd} for path, hexd in self.digests.items()}

    def __len__(self) -> int:
        return len(self.digests)


def hash_artifacts(
    base: str | os.PathLike[str],
    patterns: Sequence[str],
    excludes: Iterable[str] = Excludes.DEFAULT,
    *,
    progress: Progress | None = None,
    on_total: Callable[[int], None] | None = None,
) -> ArtifactSet:
    """Hash every file under `base` that `patterns` select, minus `excludes`."""
    base = os.fspath(base)
    paths = collect(base, compile_patterns(patterns), Excludes(excludes))
    if on_total:
        on_total(len(paths))
    raw = hash_paths(base, paths, progress=progress)
    return ArtifactSet(dict(zip(paths, (d.hex() for d in raw), strict=True)))
