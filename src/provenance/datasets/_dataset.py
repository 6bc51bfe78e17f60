"""`Dataset`: a step's dataset material or product, recorded as one manifest artifact.

`recorded_datasets` reads such a record back from a link (the one reader of
`environment.datasets`, for verification, trace, inspect, report and the BOM).
"""

from __future__ import annotations

import hashlib
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from provenance.datasets._engines import ENGINES
from provenance.errors import UsageError
from provenance.hashing import check_relative, objects

MANIFEST_DIR = ".provenance/datasets"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class Dataset:
    """A local directory or `s3://bucket/prefix` a step reads (material) or writes (product).

    The step records the dataset's manifest (written to `manifest`, a path relative to the
    project root; by default `.provenance/datasets/<name>.manifest`) as one artifact, and the
    member count, bytes and source in the link's `environment.datasets`. `engine`: "local" or
    "ray" (default: the `engine` setting, else local).

    `streamed=True` (materials only): the members are not hashed before the step runs. The
    manifest must exist already (a product of the step that made the dataset); the step
    records it, and the training code reads the shards through `VerifiedShards`, which checks
    each shard as it is read. The link's `environment.datasets.read` then says, per manifest,
    how many shards and bytes the loaders read and whether they read to the end.
    """

    source: str
    manifest: str | None = None
    engine: str | None = None
    streamed: bool = False

    def __post_init__(self) -> None:
        if not isinstance(self.source, str) or not self.source.strip():
            raise UsageError("Dataset(source=...) needs a directory or an s3:// prefix")
        if objects.is_object_uri(self.source):
            objects.parse_uri(self.source.rstrip("/") or self.source, what="dataset URI")
        if self.manifest is not None:
            check_relative(self.manifest, what="dataset manifest path")
        if self.engine is not None and self.engine not in ENGINES:
            raise UsageError(f"unknown engine {self.engine!r} (expected one of: local, ray)")

    @property
    def manifest_path(self) -> str:
        """Where the manifest is written, relative to the project root."""
        if self.manifest is not None:
            return check_relative(self.manifest, what="dataset manifest path")
        text = self.source.removeprefix("s3://").strip("/")
        slug = _UNSAFE.sub("_", text).strip("_.")[:80] or "dataset"
        tag = hashlib.sha256(self.source.encode()).hexdigest()[:8]
        return f"{MANIFEST_DIR}/{slug}-{tag}.manifest"

    def source_path(self, base: str) -> str:
        """The source as the engines take it: a URI, or a directory resolved against `base`."""
        if objects.is_object_uri(self.source):
            return self.source
        return os.path.join(base, self.source)


SIDES = ("materials", "products")
_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")


def human_bytes(n: int) -> str:
    """`n` bytes for people: 1024-based, one decimal above a KiB (`1.5 GiB`)."""
    size = float(n)
    for unit in _UNITS:
        if size < 1024 or unit == _UNITS[-1]:
            return f"{n} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")  # pragma: no cover


def _count(value: Any) -> int | None:
    return value if type(value) is int and value >= 0 else None


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass(frozen=True)
class RecordedDataset:
    """A dataset one link records: its manifest artifact and the step's description of it.

    `manifest` and `sha256` are the artifact as the link records it (what verification checks
    and layout rules match). The rest is `environment.datasets`: what the step said it hashed
    (its claim, signed with the link), None where the link holds no well-formed value.
    """

    side: str  # "materials" or "products"
    manifest: str
    sha256: str
    source: str | None
    kind: str | None
    members: int | None
    bytes: int | None
    engine: str | None
    read: Mapping[str, Any] | None = None  # materials verified while reading: what was read

    @property
    def size(self) -> str:
        """The recorded total size for people (`?` when the link holds none)."""
        return "?" if self.bytes is None else human_bytes(self.bytes)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form (`--json` of trace and inspect)."""
        doc: dict[str, Any] = {
            "side": self.side,
            "manifest": self.manifest,
            "manifest_sha256": self.sha256,
            "source": self.source,
            "kind": self.kind,
            "members": self.members,
            "bytes": self.bytes,
            "size": self.size,
            "engine": self.engine,
        }
        if self.read is not None:
            doc["read"] = dict(self.read)
        return doc


def _sha(section: Any, path: str) -> str | None:
    entry = section.get(path) if isinstance(section, Mapping) else None
    if isinstance(entry, Mapping):
        entry = entry.get("sha256")
    return entry if isinstance(entry, str) and _HEX64.match(entry) else None


_HEX64 = re.compile(r"[0-9a-f]{64}\Z")
_READ_KEYS = ("members", "shards_read", "bytes_read", "loaders")


def _read_of(reads: Any, sha256: str) -> dict[str, Any] | None:
    entry = reads.get(sha256) if isinstance(reads, Mapping) else None
    if not isinstance(entry, Mapping):
        return None
    out: dict[str, Any] = {k: entry[k] for k in _READ_KEYS if _count(entry.get(k)) is not None}
    if isinstance(entry.get("completed"), bool):
        out["completed"] = entry["completed"]
    return out


def recorded_datasets(
    environment: Mapping[str, Any], materials: Any, products: Any
) -> list[RecordedDataset]:
    """The datasets a link records, materials first, each sorted by manifest path.

    The one reader of `environment.datasets` (record/_datasets.py writes it). `materials` and
    `products` are the link's artifact sections (path -> {"sha256": …}, or path -> sha256): a
    description counts only when its manifest is among the artifacts of its side, with a
    sha256; anything else in the environment is ignored. Nothing here is trusted more than the
    link it came from: callers read verified links (or say that they did not).
    """
    described = environment.get("datasets") if isinstance(environment, Mapping) else None
    if not isinstance(described, Mapping):
        return []
    found: list[RecordedDataset] = []
    for side, section in zip(SIDES, (materials, products), strict=True):
        entries = described.get(side)
        if not isinstance(entries, Mapping):
            continue
        for manifest in sorted(k for k in entries if isinstance(k, str)):
            about, sha = entries[manifest], _sha(section, manifest)
            if not isinstance(about, Mapping) or sha is None:
                continue
            kind = about.get("kind")
            found.append(
                RecordedDataset(
                    side,
                    manifest,
                    sha,
                    _text(about.get("source")),
                    kind if kind in ("local", "s3") else None,
                    _count(about.get("members")),
                    _count(about.get("bytes")),
                    _text(about.get("engine")),
                    _read_of(described.get("read"), sha) if side == "materials" else None,
                )
            )
    return found
