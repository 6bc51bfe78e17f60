"""sha256 of one S3 object's bytes: the one S3 hasher (recording, verification, the gate).

Strict about the protocol, because the digest must be of exactly one version of the object:
every answer must be the range asked for (a 206 with a well-formed Content-Range, or a 200 with
the whole object), every body exactly its announced length, the object the size its listing
said (`size`), and the parts of one read bound to one version by If-Match on the first
answer's ETag (no ETag and several parts: refused). Any breach is `ObjectChanged`.

Two ways to fetch, one set of checks. `ranged=True` (the gate's re-hash of one large version)
reads at the speed of hashing, not of one stream followed by hashing. One GET read and hashed
in turn is bounded by the sum of both costs; here PARALLEL ranged GETs
fetch the next parts while the current one is hashed (both release the GIL), in order, so memory
stays at (PARALLEL + 1) x PART bytes and nothing is written to disk. Parts are read into buffers
allocated once and reused: a fresh 8 MiB object per part made the kernel fault in and zero its
pages anew (measured per GiB: 80-110k page faults instead of ~10k, 0.3-0.5 s more CPU). Every
range is asked for with If-Match on the ETag the first answer gave: an object overwritten
mid-read fails the read instead of yielding the digest of a mix of two objects.
`ranged=False` (recording and verifying many objects, a few at once) is one GET streamed
through one 1 MiB buffer: memory stays at a few MiB whatever the object size.

s3transfer (installed with boto3) also does ranged parallel GETs with IfMatch, but it writes
parts to a file or a seekable stream and checks neither Content-Range nor the exact length of
each part against the range asked for; in-order hashing from reused buffers here is what keeps
the gate's measured speed (benchmarks/RESULTS-stack.md).
"""

from __future__ import annotations

import hashlib
import itertools
import queue
import re
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, NamedTuple

PART = 8 << 20
PARALLEL = 4
_PIECE = 1 << 20  # read at a time into a part's buffer (the HTTP layer copies through this)


class ObjectChanged(Exception):
    """An answer did not hold exactly the bytes of one version of the object.

    The object was replaced between two parts of one read (a store ignoring If-Match), is not
    the size its listing said, or an answer was not exactly the range asked for.
    """


class ObjectRead(NamedTuple):
    """What one read of an object gave: the digest and what the store said about those bytes."""

    sha256: str  # hex
    size: int
    etag: str
    version_id: str | None


def object_sha256(client: Any, bucket: str, key: str, size: int | None = None) -> str:
    """Hex sha256 of `bucket`/`key`, read through the boto3 `client` in ranged parts.

    Args:
        client: a boto3 S3 client.
        bucket: the bucket.
        key: the object key.
        size: when given (the listing's), the size the object must have.

    Returns:
        The sha256 hex of the object's bytes.

    Raises:
        ObjectChanged: an answer broke the protocol checks (module docstring).
        botocore.exceptions.ClientError: the store refused a request.
    """
    return read_object(client, bucket, key, size).sha256


def read_object(
    client: Any, bucket: str, key: str, size: int | None = None, *, ranged: bool = True
) -> ObjectRead:
    """sha256, size, ETag and VersionId of one read of `bucket`/`key` (see `object_sha256`).

    `ranged=False` asks for the whole object in one GET (bounded memory for callers that read
    several objects at once); the checks on the answer are the same.
    """
    from botocore.exceptions import ClientError

    where = f"s3://{bucket}/{key}"
    try:
        if not ranged:
            first = client.get_object(Bucket=bucket, Key=key)
        else:
            first = client.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{PART - 1}")
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "InvalidRange":
            raise
        first = client.get_object(Bucket=bucket, Key=key)  # an empty object has no byte 0
    etag = str(first.get("ETag") or "")
    got = _answer_range(first, where)
    total = int(first["ContentLength"]) if got is None else got[2]
    if size is not None and total != size:
        first["Body"].close()
        raise ObjectChanged(f"{where} is {total} bytes, not the {size} its listing said")

    def done(digest: str) -> ObjectRead:
        return ObjectRead(digest, total, etag, first.get("VersionId") or None)

    h = hashlib.sha256()
    if got is None:  # the store sent the whole object: it is all in this one body
        buf = bytearray(min(_PIECE, total))
        for start in range(0, total, _PIECE):
            piece = min(_PIECE, total - start)
            h.update(_fill(first["Body"], buf, piece, where, start, last=False))
        _fill(first["Body"], buf, 0, where, total)
        return done(h.hexdigest())
    if got[:2] != (0, min(PART, total) - 1):
        first["Body"].close()
        raise ObjectChanged(f"{where}: asked for bytes 0-{PART - 1}, the store sent {got[:2]}")
    parts = -(-total // PART)
    if parts > 1 and not etag:
        first["Body"].close()  # without an ETag, If-Match cannot bind the parts to one version
        raise ObjectChanged(f"{where}: the store gave no ETag; its parts cannot be read as one")
    free: queue.SimpleQueue[bytearray] = queue.SimpleQueue()
    for _ in range(min(PARALLEL + 1, parts)):  # PARALLEL parts in flight, one being hashed
        free.put(bytearray(min(PART, total)))
    buf = free.get()
    h.update(_fill(first["Body"], buf, min(PART, total), where, 0))
    free.put(buf)
    starts = iter(range(PART, total, PART))

    def part(start: int) -> tuple[bytearray, memoryview]:
        end = min(start + PART, total) - 1
        answer = client.get_object(
            Bucket=bucket, Key=key, Range=f"bytes={start}-{end}", IfMatch=etag
        )
        try:
            if answer.get("ETag") != etag:
                raise ObjectChanged(f"{where} changed while it was read (byte {start})")
            if _answer_range(answer, where) != (start, end, total):
                raise ObjectChanged(
                    f"{where}: asked for bytes {start}-{end} of {total}, the "
                    "store sent another range"
                )
        except BaseException:
            answer["Body"].close()
            raise
        into = free.get()
        try:
            return into, _fill(answer["Body"], into, end - start + 1, where, start)
        except BaseException:
            free.put(into)
            raise

    with ThreadPoolExecutor(PARALLEL, thread_name_prefix="provenance-rehash") as pool:
        pending: deque[Future[tuple[bytearray, memoryview]]] = deque(
            pool.submit(part, s) for s in itertools.islice(starts, PARALLEL)
        )
        try:
            while pending:
                into, data = pending.popleft().result()
                nxt = next(starts, None)
                if nxt is not None:
                    pending.append(pool.submit(part, nxt))
                h.update(data)
                free.put(into)
        except BaseException:
            for fut in pending:
                fut.cancel()
            raise
    return done(h.hexdigest())


_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)\Z")


def _answer_range(answer: dict[str, Any], where: str) -> tuple[int, int, int] | None:
    """(first, last, total) of a partial answer (206), None for the whole object (200).

    A 206 without a well-formed Content-Range is refused: its bytes could be any part of the
    object.
    """
    content_range = str(answer.get("ContentRange") or "")
    status = answer.get("ResponseMetadata", {}).get("HTTPStatusCode")
    if status is None:  # not a boto3 answer: a Content-Range is what says it is partial
        status = 206 if content_range else 200
    if status == 200:
        return None
    m = _CONTENT_RANGE.match(content_range)
    if status != 206 or not m:
        answer["Body"].close()
        raise ObjectChanged(
            f"{where}: not a ranged answer the re-hash can use (HTTP {status}, "
            f"Content-Range {content_range!r})"
        )
    return int(m[1]), int(m[2]), int(m[3])


def _fill(
    body: Any, buf: bytearray, length: int, where: str, start: int, last: bool = True
) -> memoryview:
    """Read exactly `length` bytes of the streamed `body` into `buf`.

    With `last`, the body must end there. A body shorter or longer than its range is an error
    (the digest would be of other bytes than the object's); on any error the body is closed,
    its connection dropped.
    """
    view = memoryview(buf)[:length]
    got = 0
    try:
        while got < length:
            n = body.readinto(view[got : got + _PIECE])
            if not n:
                break
            got += n
        # Reading past the end also has botocore check the length the answer announced.
        if got != length or (last and body.read(1)):
            raise ObjectChanged(f"{where} changed while it was read (byte {start + got})")
    except BaseException:
        body.close()
        raise
    return view
