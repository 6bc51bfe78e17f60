"""A manifest: which files (relative POSIX path -> sha256) make up an artifact set.

One comparison for every place that checks real files against recorded ones (verify, promote,
fetch and the registry plugin), with model-transparency's diff-style messages.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from provenance.hashing._walk import printable

# Recorded in decisions: the digest changes meaning if the encoding ever changes.
DIGEST_SCHEME = "ml-provenance-manifest-v1"


@dataclass(frozen=True)
class Change:
    path: str
    expected: str | None  # None: the file is extra
    actual: str | None  # None: the file is missing

    @property
    def kind(self) -> str:
        return "extra" if self.expected is None else "missing" if self.actual is None else "changed"

    def message(self, where: str = "") -> str:
        """One line (a name with a newline or escape cannot forge another line)."""
        at = f" in {where}" if where else ""
        path = printable(self.path)
        if self.expected is None:
            return f"extra file: '{path}'{at} was not recorded"
        if self.actual is None:
            return f"missing: '{path}' is not{at or ' present'}"
        return f"hash mismatch for '{path}'{at}: expected {self.expected}, actual {self.actual}"


@dataclass(frozen=True)
class Diff:
    """Differences between an expected and an actual manifest, sorted by path."""

    changes: tuple[Change, ...] = ()

    def __bool__(self) -> bool:
        return bool(self.changes)

    def __iter__(self) -> Iterator[Change]:
        return iter(self.changes)

    def of_kind(self, kind: str) -> list[Change]:
        return [c for c in self.changes if c.kind == kind]

    def summary(self, limit: int = 5) -> str:
        """One line: counts, then the first few files."""
        counts = [
            f"{n} {k}" for k in ("missing", "extra", "changed") if (n := len(self.of_kind(k)))
        ]
        shown = "; ".join(c.message() for c in self.changes[:limit])
        more = f"; ... {len(self.changes) - limit} more" if len(self.changes) > limit else ""
        return f"{', '.join(counts)}: {shown}{more}"


@dataclass(frozen=True)
class Manifest:
    """An immutable path -> sha256 map with an injective digest."""

    files: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "files", MappingProxyType(dict(self.files)))

    def __len__(self) -> int:
        return len(self.files)

    def __contains__(self, path: object) -> bool:
        return path in self.files

    def digest(self) -> str:
        """sha256 of the canonical JSON list of [path, sha256] pairs, sorted by path.

        JSON string encoding is unambiguous, so two different file sets never share a digest
        (a `sha256sum`-style text would let a name containing a newline forge a second entry).
        """
        pairs = sorted(self.files.items())
        return hashlib.sha256(json.dumps(pairs, separators=(",", ":")).encode()).hexdigest()

    def diff(self, actual: Mapping[str, str] | Manifest) -> Diff:
        """What `actual` lacks, adds or changes relative to this (expected) manifest."""
        got = actual.files if isinstance(actual, Manifest) else actual
        changes = [
            Change(path, self.files.get(path), got.get(path))
            for path in sorted(self.files.keys() | got.keys())
            if self.files.get(path) != got.get(path)
        ]
        return Diff(tuple(changes))

    def to_dict(self) -> dict[str, str]:
        return dict(sorted(self.files.items()))
