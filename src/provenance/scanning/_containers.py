"""Containers opened with bounds: zip, tar, gzip, bzip2, xz/lzma and zlib.

Every member is read (duplicate names, data in front of a zip, overlapping members, encrypted
or unknown compression are refusals, not guesses), nesting stops at ``MAX_DEPTH``, and output
is capped per file (``MAX_TOTAL``) and by ratio (``MAX_RATIO``) against decompression bombs. An
archive that cannot be opened cleanly raises ContainerError, which the scan turns into a
refusal naming the file.
"""

from __future__ import annotations

import bz2
import io
import itertools
import lzma
import struct
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import IO, Any

MAX_DEPTH = 4
MAX_MEMBERS = 100_000
MAX_TOTAL = 8 * 1024**3  # bytes decompressed from one file, all layers together
MAX_RATIO = 200  # output / input, for anything over RATIO_FLOOR
RATIO_FLOOR = 16 * 1024 * 1024
_CHUNK = 1024 * 1024


class ContainerError(Exception):
    """The container cannot be opened cleanly."""


@dataclass
class Budget:
    """Bytes still allowed to come out of decompression for one scanned file."""

    left: int = MAX_TOTAL

    def spend(self, n: int, what: str) -> None:
        self.left -= n
        if self.left < 0:
            raise ContainerError(f"{what}: more than {MAX_TOTAL} bytes decompressed (a bomb?)")


def _ratio(out: int, inp: int, what: str) -> None:
    if out > RATIO_FLOOR and out > MAX_RATIO * max(inp, 1):
        raise ContainerError(f"{what}: expands {out // max(inp, 1)}x (a decompression bomb?)")


def sniff(head: bytes) -> str | None:
    """The container or compression format `head` starts with, or None."""
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"BZh"):
        return "bzip2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(b"\x5d\x00\x00"):
        return "lzma"
    if len(head) >= 2 and head[0] == 0x78 and (head[0] * 256 + head[1]) % 31 == 0:
        return "zlib"
    if head.startswith((b"PK\x03\x04", b"PK\x05\x06")):
        return "zip"
    if head.startswith((b"\x04\x22\x4d\x18", b"\x28\xb5\x2f\xfd", b"ZF")):
        return "unsupported"
    if _is_tar(head):
        return "tar"
    return None


def _is_tar(head: bytes) -> bool:
    if len(head) < 512:
        return False
    try:
        stored = int(head[148:156].split(b"\0")[0].strip() or b"-1", 8)
    except ValueError:
        return False
    block = head[:148] + b" " * 8 + head[156:512]
    return stored == sum(block)


def _decompressor(kind: str) -> Any:
    if kind == "gzip":
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if kind == "bzip2":
        return bz2.BZ2Decompressor()
    if kind in ("xz", "lzma"):
        return lzma.LZMADecompressor(lzma.FORMAT_XZ if kind == "xz" else lzma.FORMAT_ALONE)
    return zlib.decompressobj()


def decompress(data: bytes, kind: str, budget: Budget, what: str) -> bytes:
    """Decompress a whole stream (every concatenated member for gzip/bzip2/xz), bounded."""
    out: list[bytes] = []
    total = 0
    rest = data
    zlib_family = kind in ("gzip", "zlib")
    try:
        while rest:
            dec = _decompressor(kind)
            buf = rest
            while True:
                chunk = dec.decompress(buf, _CHUNK)
                buf = dec.unconsumed_tail if zlib_family else b""
                total += len(chunk)
                budget.spend(len(chunk), what)
                _ratio(total, len(data), what)
                out.append(chunk)
                if dec.eof:
                    break
                if not chunk and (not buf if zlib_family else dec.needs_input):
                    break
            if not dec.eof:
                raise ContainerError(f"{what}: truncated {kind} stream")
            rest = dec.unused_data
            if rest and (kind in ("zlib", "lzma") or sniff(rest[:8]) != kind):
                raise ContainerError(f"{what}: {len(rest)} bytes after the {kind} stream")
    except (OSError, EOFError, zlib.error, lzma.LZMAError, ValueError) as exc:
        raise ContainerError(f"{what}: corrupt {kind} stream ({exc})") from None
    return b"".join(out)


def _local_extent(f: IO[bytes], info: zipfile.ZipInfo) -> tuple[int, int]:
    if info.header_offset < 0:
        raise ContainerError(f"member {info.filename!r}: offset before the start of the file")
    f.seek(info.header_offset)
    head = f.read(30)
    if len(head) < 30 or head[:4] != b"PK\x03\x04":
        raise ContainerError(f"member {info.filename!r}: no local header at its offset")
    name_len, extra_len = struct.unpack("<HH", head[26:30])
    return info.header_offset, info.header_offset + 30 + name_len + extra_len + info.compress_size


def open_zip(f: IO[bytes], what: str) -> tuple[zipfile.ZipFile, list[zipfile.ZipInfo]]:
    """A zip whose members are unique, contiguous from byte 0 and not overlapping."""
    try:
        zf = zipfile.ZipFile(f)
        infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError, struct.error,
            NotImplementedError, RuntimeError, UnicodeDecodeError) as exc:  # fmt: skip
        raise ContainerError(f"{what}: not a zip archive that opens cleanly ({exc})") from None
    if len(infos) > MAX_MEMBERS:
        raise ContainerError(f"{what}: more than {MAX_MEMBERS} members")
    names = [i.filename for i in infos]
    if len(set(names)) != len(names):
        dup = sorted({n for n in names if names.count(n) > 1})[0]
        raise ContainerError(f"{what}: member name {dup!r} appears twice (which one loads?)")
    try:
        extents = sorted(_local_extent(f, i) for i in infos)
    except (ContainerError, OSError, ValueError, struct.error) as exc:
        raise ContainerError(f"{what}: {exc}") from None
    if extents and extents[0][0] != 0:
        raise ContainerError(f"{what}: {extents[0][0]} bytes of other data before the zip")
    for (_, end), (begin, _) in itertools.pairwise(extents):
        if begin < end:
            raise ContainerError(f"{what}: members overlap (a zip bomb construction)")
    for i in infos:
        if not i.filename:
            raise ContainerError(f"{what}: a member has an empty name")
        if i.filename.endswith("/") and (i.file_size or i.compress_size):
            # A loader that opens the only member (pandas) reads it whatever its name.
            raise ContainerError(f"{what}: directory entry {i.filename!r} holds data")
        if i.flag_bits & 0x1:
            raise ContainerError(f"{what}: member {i.filename!r} is encrypted")
        if i.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED, zipfile.ZIP_BZIP2,
                                   zipfile.ZIP_LZMA):  # fmt: skip
            raise ContainerError(
                f"{what}: member {i.filename!r} uses compression {i.compress_type}"
            )
        _ratio(i.file_size, i.compress_size, f"{what}: member {i.filename!r}")
    return zf, infos


def read_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, budget: Budget, what: str) -> bytes:
    """A member's bytes, bounded by its declared size and the budget; CRC checked."""
    label = f"{what}: member {info.filename!r}"
    budget.spend(info.file_size, label)
    try:
        with zf.open(info) as m:
            data = m.read(info.file_size + 1)
    except (zipfile.BadZipFile, OSError, EOFError, zlib.error, lzma.LZMAError, ValueError,
            NotImplementedError, RuntimeError) as exc:  # fmt: skip
        raise ContainerError(f"{label}: unreadable ({exc})") from None
    if len(data) != info.file_size:
        raise ContainerError(f"{label}: {len(data)} bytes, the directory says {info.file_size}")
    return data


def tar_members(data: bytes, budget: Budget, what: str) -> Iterator[tuple[str, bytes]]:
    """Every regular member of an uncompressed tar, in order; links and devices refused."""
    try:
        tf = tarfile.open(fileobj=io.BytesIO(data), mode="r:")  # noqa: SIM115 - closed with data
    except (tarfile.TarError, OSError, EOFError, ValueError, UnicodeDecodeError) as exc:
        raise ContainerError(f"{what}: not a tar archive that opens cleanly ({exc})") from None
    seen: set[str] = set()
    try:
        for count, member in enumerate(iter(tf.next, None)):
            if count >= MAX_MEMBERS:
                raise ContainerError(f"{what}: more than {MAX_MEMBERS} members")
            if member.isdir():
                continue
            if not member.isreg() or member.issparse():
                raise ContainerError(f"{what}: member {member.name!r} is not a regular file")
            if member.name in seen:
                raise ContainerError(f"{what}: member name {member.name!r} appears twice")
            seen.add(member.name)
            budget.spend(member.size, what)
            extracted = tf.extractfile(member)
            body = extracted.read() if extracted else b""
            if len(body) != member.size:
                raise ContainerError(f"{what}: member {member.name!r} is truncated")
            yield member.name, body
    except (tarfile.TarError, OSError, EOFError, ValueError, UnicodeDecodeError) as exc:
        raise ContainerError(f"{what}: corrupt tar archive ({exc})") from None
