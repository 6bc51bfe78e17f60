"""The one hashing engine: walk patterns under a base dir, hash every match with sha256."""

from __future__ import annotations

import itertools
import os
import stat
from collections.abc import Callable, Iterable, Mapping, Sequence
from json.encoder import encode_basestring_ascii
from typing import TYPE_CHECKING, Any

from provenance._fs import canonical_json
from provenance.errors import ProvenanceError
from provenance.hashing import _engine, _pool
from provenance.hashing import _objects as objects  # s3:// artifacts: hashing/_objects.py
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


class ArtifactSet:
    """Relative POSIX path -> sha256 hex digest, for the files some patterns selected.

    Hashing keeps it compact (sorted paths plus one packed digest buffer, ~100 bytes per file)
    and writes the link's JSON straight from it; the `digests` dict is built only when asked for.
    """

    __slots__ = ("_digests", "_packed", "_paths")

    def __init__(self, digests: Mapping[str, str] | None = None) -> None:
        self._digests: dict[str, str] | None = dict(digests or {})
        self._paths: list[str] = list(self._digests)
        self._packed: bytes | bytearray = b""

    @classmethod
    def packed(cls, paths: list[str], packed: bytes | bytearray) -> ArtifactSet:
        """From strictly sorted `paths` and their digests packed 32 bytes each, in order."""
        if len(packed) != 32 * len(paths):
            raise ValueError("one 32-byte digest per path is expected")
        obj = cls.__new__(cls)
        obj._paths, obj._packed, obj._digests = paths, packed, None
        return obj

    @property
    def digests(self) -> dict[str, str]:
        """Path -> hex digest (built on first use from the packed form)."""
        if self._digests is None:
            hexed = self._packed.hex()
            self._digests = {p: hexed[64 * i : 64 * i + 64] for i, p in enumerate(self._paths)}
        return self._digests

    def add(self, digests: Mapping[str, str]) -> None:
        """Join more artifacts (e.g. object-store URIs) to the set; the dict form is kept."""
        merged = self.digests
        merged.update(digests)
        self._paths = sorted(merged)

    def as_in_toto(self) -> dict[str, dict[str, str]]:
        """The in-toto link form: path -> {"sha256": digest}."""
        return {path: {"sha256": hexd} for path, hexd in self.digests.items()}

    def to_json(self) -> bytes | bytearray:
        """`canonical_json(self.as_in_toto())`, written without building that dict."""
        out = bytearray()
        self.write_json(out)
        return out

    def write_json(self, out: bytearray) -> None:
        """Append `to_json()` to `out` (the link payload is assembled in one buffer)."""
        if self._digests is not None:
            out += canonical_json(self.as_in_toto())
            return
        out += b"{"
        paths, enc = self._paths, encode_basestring_ascii  # the encoder json.dumps uses
        for start in range(0, len(paths), _JSON_STEP):
            chunk = paths[start : start + _JSON_STEP]
            packed = self._packed[32 * start : 32 * (start + _JSON_STEP)]
            if start:
                out += b","
            joined = "".join(chunk)
            if (
                joined.isascii()
                and joined.isprintable()
                and '"' not in joined
                and "\\" not in joined
            ):
                # Nothing to escape (json's ASCII encoder only escapes `"`, `\\` and characters
                # outside space..tilde): the entries are interleaved at C speed.
                digests = packed.hex(" ", 32).split(" ")  # 64 hex digits each, in C
                parts = itertools.chain.from_iterable(
                    zip(chunk, itertools.repeat(_MID), digests, itertools.repeat(_END))
                )
                out += b'"' + "".join(parts)[:-2].encode("ascii")  # no `,"` after the last
                continue
            hexed = packed.hex()
            out += ",".join(
                f'{enc(p)}:{{"sha256":"{hexed[64 * k : 64 * k + 64]}"}}'
                for k, p in enumerate(chunk)
            ).encode("ascii")
        out += b"}"

    def __len__(self) -> int:
        return len(self._paths)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ArtifactSet) and self.digests == other.digests

    __hash__ = None  # type: ignore[assignment]  # mutable-looking, compared by content

    def __repr__(self) -> str:
        return f"ArtifactSet({len(self)} files)"


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


_JSON_STEP = 8192  # entries encoded per chunk: bounded temporary strings
_MID, _END = '":{"sha256":"', '"},"'  # between a path and its digest; after the digest


def hash_artifacts(
    base: str | os.PathLike[str],
    patterns: Sequence[str],
    excludes: Iterable[str] = Excludes.DEFAULT,
    *,
    progress: Progress | None = None,
    on_total: Callable[[int], None] | None = None,
    fork_heavy: bool = False,
) -> ArtifactSet:
    """Hash every file under `base` that `patterns` select, minus `excludes`."""
    base = os.fspath(base)
    found = iter_collect_batches(base, compile_patterns(patterns), Excludes(excludes))
    paths, packed = hash_walked_batches(
        base, found, progress=progress, on_total=on_total, fork_heavy=fork_heavy
    )
    return ArtifactSet.packed(paths, packed)
