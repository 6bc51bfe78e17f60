"""The dataset manifest format: one header line, one line per member, one trailer line.

```
#ml-provenance-dataset/1<TAB>sha256<TAB>local
data/a.csv<TAB>12<TAB><64 hex>
#end<TAB><members><TAB><bytes>
```
Object stores (`s3`) add two columns: the ETag as the store sent it and the VersionId (`-`
when the bucket is not versioned). Paths are relative to the dataset's root, POSIX, safe (no
empty, `.` or `..` segment) and percent-escaped: `%`, `#` and every byte below 0x20 or equal
to 0x7f become `%XX` (upper-case hex); nothing else is escaped. A name therefore never holds a
tab or a newline, so it cannot inject a field or a line, and no member line starts with `#`.
Lines are sorted by the bytes of their escaped paths, strictly (no path twice); that is also
the order of the whole lines as bytes, since a tab sorts below every byte an escaped path
holds. One set of members has exactly one manifest, so its sha256 identifies the dataset.
See docs/datasets.md.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import NamedTuple, Protocol

from provenance.errors import ArtifactError, InputError
from provenance.hashing import is_safe_relative, printable

MAGIC = b"#ml-provenance-dataset/1"
ALGORITHM = "sha256"
KINDS = ("local", "s3")
TRAILER = b"#end\t"
MAX_LINE = 16384  # PATH_MAX (4096) escaped thrice over, plus the other fields
NO_VERSION = "-"

_ESCAPE = re.compile(r"[\x00-\x1f\x7f%#]")
_ESCAPED = re.compile(rb"%([0-9A-F]{2})")
_DIGEST = re.compile(rb"[0-9a-f]{64}\Z")
_SIZE = re.compile(rb"(?:0|[1-9][0-9]{0,19})\Z")
_FIELD = re.compile(rb"[\x21-\x7e]{1,1024}\Z")  # ETag / VersionId: printable, no space or tab


class Lines(Protocol):
    """A binary file as the reader uses it."""

    def readline(self, limit: int = -1, /) -> bytes: ...

    def read(self, n: int = -1, /) -> bytes: ...


def escape(path: str) -> str:
    """`path` with `%`, `#` and control characters percent-escaped (UTF-8 bytes)."""
    return _ESCAPE.sub(lambda m: f"%{ord(m.group()):02X}", path)


def unescape(field: bytes, where: str) -> str:
    """The member path a line's first field names; refuses anything `escape` would not write."""
    try:
        path = _ESCAPED.sub(lambda m: bytes([int(m.group(1), 16)]), field).decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(where, "a member path is not valid UTF-8") from None
    if escape(path).encode("utf-8") != field:
        raise InputError(where, f"member path {field[:80]!r} is not in canonical escaped form")
    if not is_safe_relative(path):
        raise InputError(where, f"member path {field[:80]!r} is not a safe relative path")
    return path


def header(kind: str) -> bytes:
    """The first line of a manifest of `kind` ('local' or 's3')."""
    return MAGIC + f"\t{ALGORITHM}\t{kind}\n".encode()


def trailer(members: int, total: int) -> bytes:
    """The last line: how many members and how many bytes they hold."""
    return TRAILER + f"{members}\t{total}\n".encode()


def member_line(
    path: str, size: int, digest: str, etag: str | None = None, version: str | None = None
) -> bytes:
    """One member's line; `etag` given means an object-store manifest (with a VersionId)."""
    line = f"{escape(path)}\t{size}\t{digest}"
    if etag is not None:
        extra = (etag or NO_VERSION, version or NO_VERSION)
        if not all(_FIELD.match(x.encode("utf-8", "replace")) for x in extra):
            raise ArtifactError(
                printable(path), f"the store's ETag/VersionId {extra!r} cannot be recorded"
            )
        line += "\t" + "\t".join(extra)
    data = line.encode("utf-8") + b"\n"
    if len(data) > MAX_LINE:
        raise ArtifactError(
            printable(path[:200]), f"path too long for a manifest line ({MAX_LINE})"
        )
    return data


class Member(NamedTuple):
    """One parsed member line (only ever a transient value: manifests are streamed)."""

    path: str
    size: int
    digest: str
    etag: str | None
    version: str | None
    line: bytes  # the line as written, without its newline (for exact comparisons)


class Totals(NamedTuple):
    """What a whole manifest said about itself."""

    kind: str
    members: int
    bytes: int


def _columns(kind: str) -> int:
    return 5 if kind == "s3" else 3


def read_header(f: Lines, where: str) -> str:
    """Check the header line; return the manifest's kind."""
    line = f.readline(MAX_LINE + 1)
    parts = line.rstrip(b"\n").split(b"\t")
    if not line.endswith(b"\n") or parts[0] != MAGIC:
        raise InputError(where, "not a dataset manifest (no '#ml-provenance-dataset/1' header)")
    if len(parts) != 3 or parts[1] != ALGORITHM.encode():
        raise InputError(where, f"unsupported manifest header {line[:80]!r} (expected sha256)")
    kind = parts[2].decode("ascii", "replace")
    if kind not in KINDS:
        raise InputError(where, f"unknown manifest kind {kind!r} (expected local or s3)")
    return kind


def iter_members(f: Lines, where: str, kind: str, totals: list[Totals]) -> Iterator[Member]:
    """Parse and check every member line after the header, then the trailer.

    Each line is checked as it is read (sorted, unique, well-formed), so a malformed manifest
    fails at its first bad line with the line number. The totals are appended to `totals` once
    the trailer has been read and found to agree with the lines.
    """
    columns = _columns(kind)
    previous = b""
    count = total = 0
    lineno = 1
    for line in iter(lambda: f.readline(MAX_LINE + 1), b""):
        lineno += 1
        at = f"{where}:{lineno}"
        if len(line) > MAX_LINE:  # newline included, as `member_line` counts it
            raise InputError(at, f"line longer than {MAX_LINE} bytes")
        if not line.endswith(b"\n"):
            raise InputError(at, "truncated (no newline; the trailer line is missing)")
        body = line[:-1]
        if body.startswith(TRAILER):
            _check_trailer(f, body, at, count, total)
            totals.append(Totals(kind, count, total))
            return
        fields = body.split(b"\t")
        if len(fields) != columns:
            raise InputError(at, f"expected {columns} tab-separated fields, found {len(fields)}")
        if fields[0] <= previous:
            what = "listed twice" if fields[0] == previous else "out of order"
            raise InputError(at, f"member {fields[0][:80]!r} is {what}")
        path = unescape(fields[0], at)
        if not _SIZE.match(fields[1]):
            raise InputError(at, f"invalid size {fields[1][:30]!r}")
        if not _DIGEST.match(fields[2]):
            raise InputError(at, "invalid sha256 (64 lower-case hex digits expected)")
        etag = version = None
        if columns == 5:
            if not (_FIELD.match(fields[3]) and _FIELD.match(fields[4])):
                raise InputError(at, "invalid ETag or VersionId field")
            etag, version = fields[3].decode("ascii"), fields[4].decode("ascii")
            version = None if version == NO_VERSION else version
        size = int(fields[1])
        previous = fields[0]
        count += 1  # noqa: SIM113 - the trailer check needs it, not an index
        total += size
        yield Member(path, size, fields[2].decode("ascii"), etag, version, body)
    raise InputError(f"{where}:{lineno}", "truncated (the '#end' trailer line is missing)")


def _check_trailer(f: Lines, body: bytes, at: str, count: int, total: int) -> None:
    parts = body[len(TRAILER) :].split(b"\t")
    if len(parts) != 2 or not all(_SIZE.match(p) for p in parts):
        raise InputError(at, f"malformed trailer {body[:80]!r}")
    if (int(parts[0]), int(parts[1])) != (count, total):
        raise InputError(
            at,
            f"trailer says {int(parts[0])} members / {int(parts[1])} bytes, the lines hold "
            f"{count} / {total}",
        )
    if f.read(1):
        raise InputError(at, "data after the '#end' trailer line")
