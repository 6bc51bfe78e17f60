"""Make a manifest (hash, sort, write atomically) and read one back (streamed, checked, hashed)."""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from provenance._fs import check_output, write_atomic
from provenance._progress import hashing_progress
from provenance.datasets import _engines
from provenance.datasets._format import (
    Member,
    Totals,
    header,
    iter_members,
    read_header,
    trailer,
)
from provenance.datasets._sort import LineSorter
from provenance.datasets._sources import EngineStats, LocalSource, ObjectSource, source_of
from provenance.errors import ArtifactError, InputError, OutputError

_READ = 1 << 20


@dataclass(frozen=True)
class ManifestInfo:
    """One manifest file: its sha256 (what a link records), kind, member count and bytes."""

    path: str
    sha256: str
    kind: str
    members: int
    bytes: int

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON form."""
        return {
            "path": self.path,
            "sha256": self.sha256,
            "kind": self.kind,
            "members": self.members,
            "bytes": self.bytes,
        }


def make_manifest(
    src: str,
    output: str | os.PathLike[str],
    *,
    engine: str | None = None,
    quiet: bool = False,
) -> tuple[ManifestInfo, EngineStats]:
    """Hash every member of `src` and write its manifest to `output` (atomically).

    Nothing is written unless every member was hashed: a member that cannot be read raises
    ArtifactError naming it, and `output` is left as it was (absent, or the previous file).
    """
    output = os.fspath(output)
    source = source_of(src)
    name = _engines.choose(engine)
    source.check()
    check_output(output, [src] if source.kind == "local" else [])
    if isinstance(source, LocalSource):
        _refuse_inside(output, source.root)
    parent = os.path.dirname(os.path.abspath(output))
    try:
        os.makedirs(parent, exist_ok=True)
    except OSError as exc:
        raise OutputError(output, f"cannot write: {exc.strerror}") from None
    with _sorted_members(source, name, parent, quiet) as (lines, stats):
        digest = hashlib.sha256()
        totals: list[tuple[int, int]] = []
        write_atomic(output, _manifest_bytes(source.kind, lines, digest, totals))
    members, total = totals[0]
    return ManifestInfo(output, digest.hexdigest(), source.kind, members, total), stats


def _refuse_inside(output: str, root: str) -> None:
    out, base = os.path.realpath(output), os.path.realpath(root)
    if out.startswith(base.rstrip(os.sep) + os.sep):
        raise OutputError(output, f"-o is inside the dataset {root}; it would become a member")


@contextlib.contextmanager
def _sorted_members(
    source: LocalSource | ObjectSource, engine: str, tmp_parent: str | None, quiet: bool
) -> Iterator[tuple[Iterator[bytes], EngineStats]]:
    """Every member line of `source`, hashed by `engine`, in manifest order."""
    tmpdir = tempfile.mkdtemp(prefix=".tmp-dataset-", dir=tmp_parent)
    sorter = LineSorter(tmpdir)
    try:

        def sink(lines: list[bytes]) -> None:
            for line in lines:
                sorter.add(line)

        with hashing_progress(source.describe(), quiet=quiet) as (set_total, advance):
            stats = _engines.run(engine, source, sink, advance, set_total)
        yield sorter.sorted_lines(), stats
    finally:
        sorter.close()
        shutil.rmtree(tmpdir, ignore_errors=True)


def _manifest_bytes(
    kind: str, lines: Iterator[bytes], digest: Any, totals: list[tuple[int, int]]
) -> Iterator[bytes]:
    """Header, the member lines (checked unique), trailer; hashed into `digest` as they go."""
    out = bytearray(header(kind))
    previous = b""
    count = total = 0
    for line in lines:
        path, size, _ = line.split(b"\t", 2)
        if path == previous:
            raise ArtifactError(path.decode("utf-8", "replace"), "listed twice by the source")
        previous = path
        count += 1
        total += int(size)
        out += line
        if len(out) >= _READ:
            digest.update(out)
            yield bytes(out)
            out.clear()
    out += trailer(count, total)
    digest.update(out)
    totals.append((count, total))
    yield bytes(out)


class _HashingReader:
    """A binary file read line by line, every byte also fed to sha256."""

    def __init__(self, f: BinaryIO) -> None:
        self._f = f
        self.digest = hashlib.sha256()

    def readline(self, limit: int = -1) -> bytes:
        line = self._f.readline(limit)
        self.digest.update(line)
        return line

    def read(self, n: int = -1) -> bytes:
        data = self._f.read(n)
        self.digest.update(data)
        return data


def _open(path: str) -> BinaryIO:
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except OSError as exc:
        raise InputError(path, f"cannot read manifest: {exc.strerror}") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise InputError(path, "a manifest must be a regular file")
    return os.fdopen(fd, "rb", buffering=_READ)


def members(path: str, expect_sha256: str | None = None) -> Iterator[Member]:
    """Stream the checked members of the manifest at `path`.

    With `expect_sha256` the file's bytes must hash to it; that is known only at the end, so
    the last member is yielded only after the check (a caller that stops early has seen only
    lines it cannot trust yet: use `scan` first when that matters).
    """
    with _open(path) as f:
        reader = _HashingReader(f)
        kind = read_header(reader, path)
        totals: list[Totals] = []
        held: Member | None = None
        for member in iter_members(reader, path, kind, totals):
            if held is not None:
                yield held
            held = member
        if expect_sha256 is not None and reader.digest.hexdigest() != expect_sha256:
            raise InputError(
                path,
                f"manifest sha256 is {reader.digest.hexdigest()}, expected {expect_sha256} "
                "(changed while it was read, or not the recorded manifest)",
            )
        if held is not None:
            yield held


def scan(path: str) -> ManifestInfo:
    """Read the whole manifest once: check every line, count members and bytes, hash it."""
    with _open(path) as f:
        reader = _HashingReader(f)
        kind = read_header(reader, path)
        totals: list[Totals] = []
        for _ in iter_members(reader, path, kind, totals):
            pass
        got = totals[0]
        return ManifestInfo(path, reader.digest.hexdigest(), kind, got.members, got.bytes)


def kind_of(path: str) -> str:
    """The manifest's kind from its header line alone."""
    with _open(path) as f:
        return read_header(f, path)
