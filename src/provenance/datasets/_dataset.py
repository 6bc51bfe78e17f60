"""`Dataset`: a step's dataset material or product, recorded as one manifest artifact."""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass

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
