"""Where a dataset's members come from: a local directory or an `s3://bucket/prefix`.

A source lists its members (name relative to the root, size) in any order, and hashes a batch
of them with `hash_batch`, a plain function of plain values: both engines call it, the local
engine in this process and the Ray engine as a task on a cluster node, so their results are the
same by construction. Walking, hashing and path safety are provenance.hashing's; an object's
bytes are streamed by hashing/_objects.py.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from provenance import _config
from provenance.datasets._format import member_line
from provenance.errors import ArtifactError, InputError, PatternError
from provenance.hashing import (
    Excludes,
    compile_patterns,
    hash_paths_packed,
    is_safe_relative,
    iter_collect,
    objects,
    printable,
)

# What a batch task returns: member lines, or the first member that failed and why.
BatchResult = tuple[list[bytes], tuple[str, str] | None]
Spec = tuple[str, ...]  # ("local", base) or ("s3", bucket, prefix): picklable, small
Sink = Callable[[list[bytes]], None]  # takes the member lines of one finished batch
Advance = Callable[[int], None]  # progress: members just finished


@dataclass
class EngineStats:
    """What an engine did (for benchmarks and tests): batches run, worker processes seen."""

    engine: str
    batches: int = 0
    workers: set[int] = field(default_factory=set)


@dataclass(frozen=True)
class LocalSource:
    """Every regular file under a local directory (symlinks followed only inside it)."""

    root: str

    kind = "local"

    @property
    def spec(self) -> Spec:
        return ("local", os.path.abspath(self.root))

    def describe(self) -> str:
        return self.root

    def check(self) -> None:
        """Refuse a root that is not a directory (InputError naming it)."""
        try:
            mode = os.stat(self.root).st_mode
        except OSError as exc:
            raise InputError(self.root, f"cannot read dataset: {exc.strerror}") from None
        if not stat.S_ISDIR(mode):
            raise InputError(self.root, "a dataset must be a directory or an s3:// prefix")

    def listing(self, sizes: bool) -> Iterator[tuple[str, int]]:
        """(relative path, size or 0 when `sizes` is false), in walk order."""
        base = os.path.abspath(self.root)
        # Every path below the root must be a member: a directory symlink (skipped by a step's
        # walk, as in-toto does) would be a second path to members that no manifest line names.
        walk = iter_collect(base, compile_patterns(["**"]), Excludes(()), refuse_dir_links=True)
        for rel in walk:
            if not sizes:
                yield rel, 0
                continue
            try:
                yield rel, os.stat(os.path.join(base, rel)).st_size
            except OSError as exc:
                raise ArtifactError(printable(rel), f"cannot read: {exc.strerror}") from None


@dataclass(frozen=True)
class PathsSource(LocalSource):
    """Given files below a local root (a step's -m/-p matches), hashed like dataset members."""

    names: tuple[str, ...] = ()

    def listing(self, sizes: bool) -> Iterator[tuple[str, int]]:
        """(relative path, size or 0 when `sizes` is false), in the order given."""
        for rel in self.names:
            yield rel, _stat(self.spec[1], rel).st_size if sizes else 0


@dataclass(frozen=True)
class ObjectSource:
    """Every object below `s3://bucket/prefix/` (directory markers are not members)."""

    uri: str
    bucket: str
    prefix: str  # "" or ending in "/"

    kind = "s3"

    @classmethod
    def parse(cls, uri: str) -> ObjectSource:
        bucket, key = objects.parse_uri(uri.rstrip("/") or uri, what="dataset URI")
        if any(c in key for c in "*?["):
            raise PatternError(None, f"invalid dataset URI {uri!r}: a prefix, not a glob")
        return cls(uri, bucket, key + "/" if key else "")

    @property
    def spec(self) -> Spec:
        return ("s3", self.bucket, self.prefix)

    def describe(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"

    def check(self) -> None:
        """Nothing to check before listing (the listing names a missing bucket)."""

    def listing(self, sizes: bool) -> Iterator[tuple[str, int]]:
        """(key below the prefix, size) as the store lists them, page by page."""
        from botocore.exceptions import BotoCoreError, ClientError

        s3 = objects.client()
        try:
            pages = s3.get_paginator("list_objects_v2").paginate(
                Bucket=self.bucket, Prefix=self.prefix
            )
            for page in pages:
                for item in page.get("Contents", []):
                    rel = item["Key"][len(self.prefix) :]
                    if rel.endswith("/"):
                        if int(item["Size"]) == 0:
                            continue  # a directory marker
                        # S3 keeps bytes under such a key; no reader by path sees them, so
                        # skipping them would pass data nobody listed.
                        raise ArtifactError(
                            printable(f"s3://{self.bucket}/{item['Key']}"),
                            "key ends in '/' but holds data; it cannot be a dataset member",
                        )
                    if not is_safe_relative(rel):
                        raise ArtifactError(
                            printable(f"s3://{self.bucket}/{item['Key']}"),
                            "key is not a safe relative path below the prefix (empty, '.' or "
                            "'..' segment); it cannot be a dataset member",
                        )
                    yield rel, int(item["Size"])
        except (BotoCoreError, ClientError) as exc:
            raise objects._fail(exc, self.bucket) from None


def source_of(text: str) -> LocalSource | ObjectSource:
    """The source `text` names: an `s3://` URI or a local directory."""
    if objects.is_object_uri(text):
        return ObjectSource.parse(text)
    if not text or "\x00" in text:
        raise InputError(text or "''", "a dataset needs a directory or an s3:// prefix")
    return LocalSource(text)


def hash_batch(spec: Spec, names: list[str], parallel: bool = False) -> BatchResult:
    """Member lines for `names` of the source `spec`; the first failure is returned, not raised.

    `parallel`: files are hashed by provenance.hashing's worker processes and objects a few at a
    time on threads. A Ray task passes it for objects only: Ray supplies the parallelism for
    files, so a task does not start worker processes of its own as well.
    """
    try:
        if spec[0] == "local":
            return _local_batch(spec[1], names, parallel), None
        return _object_batch(spec[1], spec[2], names, parallel), None
    except ArtifactError as exc:
        return [], (exc.path or "?", str(exc).removeprefix(f"{exc.path}: "))


def _local_batch(base: str, names: list[str], parallel: bool) -> list[bytes]:
    before = [_stat(base, rel) for rel in names]
    packed = hash_paths_packed(base, names, workers=None if parallel else 1)
    lines = []
    for i, rel in enumerate(names):
        after = _stat(base, rel)
        if (after.st_size, after.st_mtime_ns) != (before[i].st_size, before[i].st_mtime_ns):
            raise ArtifactError(printable(rel), "file changed while it was being hashed")
        lines.append(member_line(rel, after.st_size, packed[32 * i : 32 * i + 32].hex()))
    return lines


def _stat(base: str, rel: str) -> os.stat_result:
    try:
        return os.stat(os.path.join(base, rel))
    except OSError as exc:
        raise ArtifactError(printable(rel), f"cannot read: {exc.strerror}") from None


# One S3 client per process (a Ray worker runs many batches), made again when the S3 settings
# it was made from change (a process that verifies with other credentials or another endpoint).
_client: tuple[tuple[str | None, ...], Any] | None = None
_S3_SETTINGS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "AWS_PROFILE",
    "AWS_DEFAULT_REGION",
    "AWS_REGION",
    "AWS_ENDPOINT_URL_S3",
    "AWS_ENDPOINT_URL",
    "MLFLOW_S3_ENDPOINT_URL",
)


def _s3() -> Any:
    global _client
    settings = tuple(_config.environment(k) for k in _S3_SETTINGS)
    if _client is None or _client[0] != settings:
        _client = (settings, objects.client())
    return _client[1]


def _object_batch(bucket: str, prefix: str, names: list[str], parallel: bool) -> list[bytes]:
    client = _s3()
    uris = [f"s3://{bucket}/{prefix}{rel}" for rel in names]
    if parallel:
        got = objects.hash_uris(client, uris)
    else:
        got = {uri: objects.hash_object(client, uri) for uri in uris}
    lines = []
    for rel, uri in zip(names, uris, strict=True):
        result = got[uri]
        if result is None:
            raise ArtifactError(printable(uri), "object was deleted while it was being hashed")
        digest, info = result
        lines.append(member_line(rel, info.size, digest, info.etag, info.version_id))
    return lines
