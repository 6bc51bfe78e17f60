"""Verify while reading: a training loop's shards, each read once and checked before use.

`VerifiedShards(manifest, root)` iterates the records of a dataset's shards (the members of a
manifest: files below a directory or objects below an `s3://` prefix). Each shard is read once
from its source into a private spool (memory, then a temporary file beyond `SPOOL_BYTES`) while
sha256 runs over the same bytes; only when the digest and size equal the manifest's are the
shard's records decoded and yielded. A changed, missing or unlisted shard raises
VerificationError naming it before any of its records reach the caller.

The manifest itself is copied into a private spool and hashed first (`expect_sha256`: the
digest a signed link recorded, see `recorded_manifest`), so a manifest swapped while training
runs cannot change which digests the shards are held to.

What this proves: every record yielded came from a shard whose bytes are the recorded ones.
What it does not: that shards the loop never read are intact (`stats` says how many were read),
or that a dataset directory holds nothing else (use `provenance dataset verify` for that).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import itertools
import json
import os
import stat
import tarfile
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import IO, Any, Generic, TypeVar

from provenance import _config
from provenance.datasets._format import Member, Totals, iter_members, read_header
from provenance.datasets._manifest import _open
from provenance.errors import InputError, UsageError, VerificationError
from provenance.hashing import objects, printable

T = TypeVar("T")
CHUNK = 1 << 20
SPOOL_BYTES = 256 << 20  # a shard is held in memory up to this, then in a temporary file
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
READS_ENV = "PROVENANCE_DATASET_READS"  # where a recording step collects what loaders read

Decoder = Callable[[str, IO[bytes]], Iterable[T]]


def whole_shard(name: str, data: IO[bytes]) -> Iterator[tuple[str, bytes]]:
    """One record per shard: (name, bytes)."""
    yield name, data.read()


def text_lines(name: str, data: IO[bytes]) -> Iterator[bytes]:
    """One record per line of the shard (newline kept)."""
    yield from data


def tar_samples(name: str, data: IO[bytes]) -> Iterator[dict[str, Any]]:
    """WebDataset-style tar shard: files sharing a key (name up to the first dot) form a sample.

    `{"__key__": "0001", "__shard__": name, "jpg": b"...", "cls": b"3"}`. Only regular files
    are read (links, devices and directories are skipped), nothing is extracted to disk. As in
    WebDataset, a sample's files are contiguous and each extension appears once in it; a file
    that would overwrite a field (`0001.__shard__`, a second `0001.jpg`), a key that comes back
    after other samples, and a sparse member (a few bytes in the shard that expand to any size
    when read) are refused (InputError naming the shard and the member).
    """
    sample: dict[str, Any] = {}
    seen: set[str] = set()  # keys of this shard's samples so far
    try:
        with tarfile.open(fileobj=data, mode="r|") as tar:
            for info in tar:
                if info.issparse():  # before isreg(): a sparse member counts as regular
                    raise InputError(name, f"tar member {printable(info.name)!r} is sparse")
                if not info.isreg():
                    continue
                directory, _, base = info.name.rpartition("/")
                stem, _, ext = base.partition(".")
                key = f"{directory}/{stem}" if directory else stem
                if sample and sample["__key__"] != key:
                    yield sample
                    sample = {}
                if not sample and key in seen:
                    raise InputError(
                        name,
                        f"tar member {printable(info.name)!r}: the files of sample "
                        f"{printable(key)!r} are not contiguous",
                    )
                fileobj = tar.extractfile(info)
                if fileobj is None:
                    continue
                seen.add(key)
                sample.setdefault("__key__", key)
                sample.setdefault("__shard__", name)
                if ext in sample:
                    raise InputError(
                        name,
                        f"tar member {printable(info.name)!r}: sample {printable(key)!r} "
                        f"already has a {printable(ext)!r} field",
                    )
                sample[ext] = fileobj.read()
    except tarfile.TarError as exc:
        raise InputError(name, f"not a readable tar shard: {exc}") from None
    if sample:
        yield sample


@dataclass
class ReadStats:
    """What the loader read: the manifest it held shards to and how much was checked."""

    manifest_sha256: str = ""
    members: int = 0  # members the manifest lists
    shards_read: int = 0
    bytes_read: int = 0
    read: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """For a link's environment: which manifest was consumed, how much of it."""
        return {
            "manifest_sha256": self.manifest_sha256,
            "members": self.members,
            "shards_read": self.shards_read,
            "bytes_read": self.bytes_read,
        }


class VerifiedShards(Generic[T]):
    """An iterable over the records of a dataset's shards, each verified before it is used.

    `root`: the directory or `s3://bucket/prefix` the manifest's paths are relative to.
    `shards`: the shard names to read, in this order (default: every member, manifest order);
    a name the manifest does not list raises before anything is read. `decode` turns a
    verified shard into records (`whole_shard`, the default; `text_lines`, `tar_samples`, or
    your own).
    """

    def __init__(
        self,
        manifest: str | os.PathLike[str],
        root: str,
        *,
        decode: Decoder[T] | None = None,
        shards: Sequence[str] | None = None,
        expect_sha256: str | None = None,
    ) -> None:
        self.manifest = os.fspath(manifest)
        self.root = root
        self.decode: Decoder[T] = decode or whole_shard  # type: ignore[assignment]
        self.shards = None if shards is None else list(shards)
        named: set[str] = set()
        for name in self.shards or ():
            if name in named:  # it would be read, and its records yielded, twice
                raise UsageError(f"shard '{printable(name)}' is named twice in shards=")
            named.add(name)
        self.expect_sha256 = expect_sha256
        self.stats = ReadStats()
        # (i, n): read only the i-th of every n planned shards (one DataLoader worker's part),
        # counted over the verified copy of the manifest, so the parts never overlap.
        self._part = (0, 1)

    def __iter__(self) -> Iterator[T]:
        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
            digest, count = _copy_manifest(self.manifest, spool)
            if self.expect_sha256 is not None and digest != self.expect_sha256:
                raise VerificationError(
                    f"{self.manifest}: manifest sha256 is {digest}, the recorded one is "
                    f"{self.expect_sha256}; no shard was read"
                )
            self.stats = ReadStats(manifest_sha256=digest, members=count)
            try:
                for member in self._planned(spool):
                    yield from self._read(member)
            except BaseException:
                _report(self.stats, completed=False)
                raise
            _report(self.stats, completed=True)

    def _planned(self, spool: IO[bytes]) -> Iterator[Member]:
        index, count = self._part
        return itertools.islice(self._all_planned(spool), index, None, count)

    def _all_planned(self, spool: IO[bytes]) -> Iterator[Member]:
        spool.seek(0)
        listed = _members_of(spool, self.manifest)
        if self.shards is None:
            yield from listed
            return
        wanted = set(self.shards)
        found = {m.path: m for m in listed if m.path in wanted}
        unlisted = [s for s in self.shards if s not in found]
        if unlisted:
            raise VerificationError(
                f"shard '{printable(unlisted[0])}' is not listed in {self.manifest}"
                + (f" (and {len(unlisted) - 1} more)" if len(unlisted) > 1 else "")
                + "; no shard was read"
            )
        for name in self.shards:
            yield found[name]

    def _read(self, member: Member) -> Iterator[T]:
        with contextlib.ExitStack() as stack:
            if member.size <= SPOOL_BYTES:
                # One read into one bytes object, hashed whole (hashlib drops the GIL), then
                # decoded from a BytesIO that shares it: no copy beyond the read itself.
                data = _read_bytes(self.root, member.path, member.size + 1)
                size, got = len(data), hashlib.sha256(data).hexdigest()
                shard: IO[bytes] = io.BytesIO(data)
            else:
                shard = stack.enter_context(tempfile.TemporaryFile())
                h = hashlib.sha256()
                size = 0
                for chunk in _stream(self.root, member.path):
                    h.update(chunk)
                    size += len(chunk)
                    shard.write(chunk)
                    if size > member.size:
                        break  # longer than recorded: no need to read the rest
                got = h.hexdigest()
            if size != member.size or got != member.digest:
                raise VerificationError(
                    f"shard '{printable(member.path)}' does not match {self.manifest}: "
                    f"expected sha256 {member.digest} ({member.size} bytes), read "
                    f"{got if size <= member.size else 'more'} ({size}"
                    f"{'+' if size > member.size else ''} bytes); none of its records were used"
                )
            self.stats.shards_read += 1
            self.stats.bytes_read += size
            self.stats.read.append(member.path)
            shard.seek(0)
            yield from self.decode(member.path, shard)


def _read_bytes(root: str, rel: str, limit: int) -> bytes:
    """Up to `limit` bytes of one shard (one read for a local file)."""
    if objects.is_object_uri(root):
        parts: list[bytes] = []
        held = 0
        for chunk in _stream_object(root, rel):
            parts.append(chunk)
            held += len(chunk)
            if held >= limit:
                break
        return b"".join(parts)[:limit]
    f = _open_shard(root, rel)
    with f:
        data = f.read(limit)
        if len(data) < limit:  # a short read is not the end of a regular file: go on
            rest = [data]
            while len(data) < limit and (more := f.read(limit - len(data))):
                rest.append(more)
                data = b"".join(rest)
        return data


def _report(stats: ReadStats, completed: bool) -> None:
    """Tell the step recording this process (or its parent) what was read: one JSON line.

    A step whose datasets are verified while read sets READS_ENV to a file of its own
    (record/_datasets.py); DataLoader workers each append their line (O_APPEND).
    """
    path = _config.environment(READS_ENV)
    if not path:
        return
    line = json.dumps({**stats.to_dict(), "completed": completed}, sort_keys=True) + "\n"
    flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except OSError:
        return  # the recorder then records no reads, which says the loader was not seen
    try:
        os.write(fd, line.encode())
    finally:
        os.close(fd)


def _copy_manifest(path: str, spool: IO[bytes]) -> tuple[str, int]:
    """Copy the manifest's bytes into `spool` as they are checked; (sha256, member count).

    One pass: a malformed manifest is refused at its first bad line, before the rest of it
    is read (a huge or endless file costs no more than its first bad line).
    """
    with _open(path) as f:
        reader = _Copying(f, spool)
        kind = read_header(reader, path)
        totals: list[Totals] = []
        for _ in iter_members(reader, path, kind, totals):
            pass
    return reader.digest.hexdigest(), totals[0].members


class _Copying:
    """A binary file read for the format checks, every byte also hashed and copied."""

    def __init__(self, f: IO[bytes], spool: IO[bytes]) -> None:
        self._f = f
        self._spool = spool
        self.digest = hashlib.sha256()

    def readline(self, limit: int = -1) -> bytes:
        line = self._f.readline(limit)
        self.digest.update(line)
        self._spool.write(line)
        return line

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self.digest.update(data)
        self._spool.write(data)
        return data


def _members_of(spool: IO[bytes], where: str) -> Iterator[Member]:
    """The members of the private copy (checked when it was made, parsed the same way again)."""
    kind = read_header(spool, where)
    yield from iter_members(spool, where, kind, [])


def _stream(root: str, rel: str) -> Iterator[bytes]:
    """The bytes of one shard, in chunks; VerificationError naming it when it is missing."""
    if objects.is_object_uri(root):
        yield from _stream_object(root, rel)
        return
    with _open_shard(root, rel) as f:
        while chunk := f.read(CHUNK):
            yield chunk


def _open_shard(root: str, rel: str) -> IO[bytes]:
    """A local shard opened for reading; VerificationError naming it when it is missing."""
    try:
        # Non-blocking: a FIFO put in a shard's place must not hang the training loop.
        fd = os.open(os.path.join(root, rel), os.O_RDONLY | os.O_NONBLOCK | _CLOEXEC)
    except FileNotFoundError:
        raise VerificationError(f"shard '{printable(rel)}' is missing from {root}") from None
    except OSError as exc:
        raise VerificationError(
            f"shard '{printable(rel)}' cannot be read: {exc.strerror}"
        ) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise VerificationError(f"shard '{printable(rel)}' is not a regular file")
    os.set_blocking(fd, True)
    return os.fdopen(fd, "rb", buffering=0)


def _stream_object(root: str, rel: str) -> Iterator[bytes]:
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, key = objects.parse_uri(root.rstrip("/") or root, what="dataset URI")
    key = f"{key}/{rel}" if key else rel
    s3 = objects.client()
    try:
        body = s3.get_object(Bucket=bucket, Key=key)["Body"]
    except ClientError as exc:
        if objects._missing(exc):
            raise VerificationError(f"shard '{printable(rel)}' is missing from {root}") from None
        raise objects._fail(exc, bucket) from None
    except BotoCoreError as exc:
        raise objects._fail(exc, bucket) from None
    try:
        yield from body.iter_chunks(CHUNK)
    finally:
        body.close()
