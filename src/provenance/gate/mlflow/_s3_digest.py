"""sha256 of an S3 object at the speed of hashing, not of one stream followed by hashing.

One GET read and hashed in turn is bounded by the sum of both costs; here PARALLEL ranged GETs
fetch the next parts while the current one is hashed (both release the GIL), in order, so memory
stays at PARALLEL x PART bytes and nothing is written to disk. Every range is asked for with
If-Match on the ETag the first answer gave: an object overwritten mid-read fails the read
instead of yielding the digest of a mix of two objects.
"""

from __future__ import annotations

import hashlib
import itertools
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

PART = 8 << 20
PARALLEL = 4


class ObjectChanged(Exception):
    """The object was replaced between two parts of one read (a store ignoring If-Match)."""


def object_sha256(client: Any, bucket: str, key: str) -> str:
    """Hex sha256 of `bucket`/`key`, read through the boto3 `client` in ranged parts."""
    from botocore.exceptions import ClientError

    try:
        first = client.get_object(Bucket=bucket, Key=key, Range=f"bytes=0-{PART - 1}")
    except ClientError as exc:
        if exc.response.get("Error", {}).get("Code") != "InvalidRange":
            raise
        first = client.get_object(Bucket=bucket, Key=key)  # an empty object has no byte 0
    etag = first["ETag"]
    size = _total_size(first)
    h = hashlib.sha256()
    h.update(first["Body"].read())
    starts = iter(range(PART, size, PART))

    def part(start: int) -> bytes:
        end = min(start + PART, size) - 1
        answer = client.get_object(
            Bucket=bucket, Key=key, Range=f"bytes={start}-{end}", IfMatch=etag
        )
        data = bytes(answer["Body"].read())
        if answer.get("ETag") != etag or len(data) != end - start + 1:
            raise ObjectChanged(f"s3://{bucket}/{key} changed while it was read (byte {start})")
        return data

    with ThreadPoolExecutor(PARALLEL, thread_name_prefix="provenance-rehash") as pool:
        pending: deque[Future[bytes]] = deque(
            pool.submit(part, s) for s in itertools.islice(starts, PARALLEL)
        )
        while pending:
            data = pending.popleft().result()
            nxt = next(starts, None)
            if nxt is not None:
                pending.append(pool.submit(part, nxt))
            h.update(data)
    return h.hexdigest()


def _total_size(answer: dict[str, Any]) -> int:
    """The object's size from a ranged answer (Content-Range: bytes 0-N/SIZE), or the whole
    length when the store ignored the range and sent everything (then nothing is left)."""
    content_range = str(answer.get("ContentRange") or "")
    if "/" in content_range:
        return int(content_range.rsplit("/", 1)[1])
    return int(answer["ContentLength"])
