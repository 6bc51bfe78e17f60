"""Compact artifact maps: a link's plain artifact section held as path -> sha256 hex.

Nearly every link records exactly `{"sha256": <hex>}` per artifact. Held as parsed JSON that is a
dict per artifact (~180 bytes each); here it is one string, so a million-artifact section costs
~240 MB instead of ~430 MB. The map still reads as in-toto's `{path: {"sha256": hex}}` to every
consumer (a fresh digest dict per lookup); the verifier's hot loops take `shas_of` and
`membership`.

A map may be made of several parts with disjoint keys: a step's materials are often an earlier
step's products plus a few files, and then share that section's part instead of copying it.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Callable, Iterator, Mapping
from typing import Any


class ArtifactMap(Mapping[str, Mapping[str, str]]):
    """path -> {"sha256": hex} for a plain artifact section, in the section's order."""

    __slots__ = ("_len", "_parts")

    def __init__(self, *parts: dict[str, str]) -> None:
        # Callers guarantee the parts' keys are disjoint (a duplicate key is refused earlier).
        self._parts = tuple(p for p in parts if p) or ({},)
        self._len = sum(map(len, self._parts))

    @property
    def parts(self) -> tuple[dict[str, str], ...]:
        """The path -> hex dicts the map is made of (disjoint; shared with other maps)."""
        return self._parts

    def sha256(self, path: str) -> str | None:
        """The sha256 hex recorded for `path`, or None."""
        for part in self._parts:
            sha = part.get(path)
            if sha is not None:
                return sha
        return None

    def sha256_getter(self) -> Callable[[str], str | None]:
        """Path -> hex or None; the dict's own `get` (C speed) when the map has one part."""
        if len(self._parts) == 1:
            return self._parts[0].get
        return self.sha256

    def __getitem__(self, path: str) -> Mapping[str, str]:
        sha = self.sha256(path)
        if sha is None:
            raise KeyError(path)
        return {"sha256": sha}

    def get(self, path: str, default: Any = None) -> Any:
        """`{"sha256": hex}` for `path` (a new dict each time), or `default`."""
        sha = self.sha256(path)
        return default if sha is None else {"sha256": sha}

    def __contains__(self, path: object) -> bool:
        return any(path in part for part in self._parts)

    def __iter__(self) -> Iterator[str]:
        return itertools.chain.from_iterable(self._parts)

    def __len__(self) -> int:
        return self._len

    def shas(self) -> Iterator[tuple[str, str]]:
        """(path, hex) in the section's order."""
        return itertools.chain.from_iterable(part.items() for part in self._parts)

    def __eq__(self, other: object) -> bool:
        if self is other:
            return True
        if isinstance(other, ArtifactMap):
            if len(self) != len(other):
                return False
            if len(self._parts) == 1 and len(other._parts) == 1:
                return self._parts[0] == other._parts[0]
            get = other.sha256_getter()
            return all(get(p) == sha for p, sha in self.shas())
        if isinstance(other, Mapping):
            return len(self) == len(other) and all(
                other.get(p) == {"sha256": sha} for p, sha in self.shas()
            )
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable-looking, like dict

    def __repr__(self) -> str:
        return f"ArtifactMap({len(self)} artifacts)"


def shas_of(artifacts: ArtifactMap, paths: list[str]) -> list[str | None]:
    """The sha256 hex of each of `paths` (None where absent), looked up at C speed.

    The largest part answers first; only the paths it lacks are looked up in the others.

    Args:
        artifacts: a link's artifact section.
        paths: the paths to look up.

    Returns:
        One hex digest or None per path, in the order of `paths`.
    """
    parts = sorted(artifacts.parts, key=len, reverse=True)
    out: list[str | None] = list(map(parts[0].get, paths))
    if len(parts) > 1:
        missing = list(
            itertools.compress(range(len(out)), map(operator.is_, out, itertools.repeat(None)))
        )
        for i in missing:
            path = paths[i]
            for part in parts[1:]:
                sha = part.get(path)
                if sha is not None:
                    out[i] = sha
                    break
    return out


def membership(artifacts: Mapping[str, Any]) -> Callable[[object], bool]:
    """`artifacts.__contains__`, the dict's own (C speed) for a one-part ArtifactMap."""
    if isinstance(artifacts, ArtifactMap) and len(artifacts.parts) == 1:
        return artifacts.parts[0].__contains__
    return artifacts.__contains__
