"""The plugin's streamed re-hash of S3 objects (ranged parts fetched ahead of the hashing),
against the stack's SeaweedFS: the digest is the sha256 of the object's bytes at every size
around the part boundaries, and an object overwritten while it is read is an error, never the
digest of a mix of two objects.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import uuid
from typing import Any

import pytest

from tests.integration.test_stack import s3_client
from tests.stack_fixture import Stack

pytestmark = pytest.mark.stack
PART = 1 << 16


@pytest.fixture
def small_parts(monkeypatch: pytest.MonkeyPatch) -> Any:
    from provenance.hashing import _s3_read

    monkeypatch.setattr(_s3_read, "PART", PART)
    return _s3_read


@pytest.mark.parametrize("size", [0, 1, PART - 1, PART, PART + 1, 9 * PART + 3])
def test_ranged_digest_is_the_sha256_of_the_object(
    stack: Stack, small_parts: Any, size: int
) -> None:
    s3 = s3_client(stack)
    key = f"artifacts/rehash-test/{uuid.uuid4().hex}"
    data = os.urandom(size)
    s3.put_object(Bucket="mlflow", Key=key, Body=data)
    assert small_parts.object_sha256(s3, "mlflow", key) == hashlib.sha256(data).hexdigest()


def test_an_object_overwritten_mid_read_fails_the_digest(
    stack: Stack, small_parts: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from botocore.exceptions import ClientError

    s3 = s3_client(stack)
    key = f"artifacts/rehash-test/{uuid.uuid4().hex}"
    s3.put_object(Bucket="mlflow", Key=key, Body=os.urandom(6 * PART))
    calls = []

    class OverwriteAfterFirstPart:
        """The client, with the object replaced as soon as the first part was answered."""

        def get_object(self, **kw: Any) -> Any:
            calls.append(kw)
            answer = s3.get_object(**kw)
            if len(calls) == 1:
                s3.put_object(Bucket="mlflow", Key=key, Body=os.urandom(6 * PART))
            return answer

    with pytest.raises((ClientError, small_parts.ObjectChanged)) as info:
        small_parts.object_sha256(OverwriteAfterFirstPart(), "mlflow", key)
    if isinstance(info.value, ClientError):  # the store honoured If-Match
        assert info.value.response["Error"]["Code"] in ("PreconditionFailed", "412")
    assert len(calls) > 1 and all("IfMatch" in kw for kw in calls[1:])


def test_a_store_that_ignores_ranges_still_gives_the_objects_digest(
    stack: Stack, small_parts: Any
) -> None:
    s3 = s3_client(stack)
    key = f"artifacts/rehash-test/{uuid.uuid4().hex}"
    data = os.urandom(5 * PART + 7)
    s3.put_object(Bucket="mlflow", Key=key, Body=data)
    calls = []

    class IgnoresRanges:
        """The client of a store that answers every ranged GET with the whole object."""

        def get_object(self, **kw: Any) -> Any:
            calls.append(kw)
            kw.pop("Range", None)
            return s3.get_object(**kw)

    assert (
        small_parts.object_sha256(IgnoresRanges(), "mlflow", key)
        == hashlib.sha256(data).hexdigest()
    )
    assert len(calls) == 1  # everything came in the first answer; no part was asked twice


@pytest.mark.parametrize("change", ["shorter", "longer"])
def test_a_part_whose_body_is_not_its_range_fails_the_digest(
    stack: Stack, small_parts: Any, change: str
) -> None:
    import io

    from botocore.response import StreamingBody

    s3 = s3_client(stack)
    key = f"artifacts/rehash-test/{uuid.uuid4().hex}"
    s3.put_object(Bucket="mlflow", Key=key, Body=os.urandom(4 * PART))

    class BadSecondPart:
        """The client, with the second part's body one byte short of (or past) its range."""

        def __init__(self) -> None:
            self.calls = itertools.count(1)  # parts are asked for from several threads

        def get_object(self, **kw: Any) -> Any:
            call = next(self.calls)
            answer = s3.get_object(**kw)
            if call == 2:
                body = answer["Body"].read()
                body = body[:-1] if change == "shorter" else body + b"x"
                answer["Body"] = StreamingBody(io.BytesIO(body), len(body))
            return answer

    with pytest.raises(small_parts.ObjectChanged, match=r"changed while it was read \(byte"):
        small_parts.object_sha256(BadSecondPart(), "mlflow", key)


def _put(s3: Any, size: int) -> str:
    key = f"artifacts/rehash-test/{uuid.uuid4().hex}"
    s3.put_object(Bucket="mlflow", Key=key, Body=os.urandom(size))
    return key


class _Edited:
    """The stack's client, with each answer passed through `edit(call number, answer)`."""

    def __init__(self, s3: Any, edit: Any) -> None:
        self.s3, self.edit, self.calls = s3, edit, itertools.count(1)

    def get_object(self, **kw: Any) -> Any:
        call = next(self.calls)  # parts are asked for from several threads
        return self.edit(call, self.s3.get_object(**kw))


@pytest.mark.parametrize(
    "edit",
    [
        pytest.param(lambda a: a.pop("ContentRange"), id="206-without-content-range"),
        pytest.param(lambda a: a.update(ContentRange="bytes 0-99/x"), id="malformed-range"),
        pytest.param(
            lambda a: a.update(ContentRange=a["ContentRange"].replace("bytes ", "bytes 1")),
            id="another-range",
        ),
    ],
)
def test_an_answer_that_is_not_the_range_asked_for_fails_the_digest(
    stack: Stack, small_parts: Any, edit: Any
) -> None:
    """A part whose Content-Range is missing, malformed or not the one asked for could be any
    bytes of the object (e.g. a 206 read as the whole object hashes only its first part)."""
    s3 = s3_client(stack)
    key = _put(s3, 3 * PART)
    for bad_call in (1, 2):

        def change(call: int, answer: Any, bad_call: int = bad_call) -> Any:
            if call == bad_call:
                edit(answer)
            return answer

        with pytest.raises(small_parts.ObjectChanged):
            small_parts.object_sha256(_Edited(s3, change), "mlflow", key)


def test_an_object_not_the_size_its_listing_said_fails_the_digest(
    stack: Stack, small_parts: Any
) -> None:
    s3 = s3_client(stack)
    key = _put(s3, 2 * PART)
    assert small_parts.object_sha256(s3, "mlflow", key, size=2 * PART)
    with pytest.raises(small_parts.ObjectChanged, match=r"is 131072 bytes, not the 131071"):
        small_parts.object_sha256(s3, "mlflow", key, size=2 * PART - 1)


def test_parts_without_an_etag_are_refused_one_part_is_not(stack: Stack, small_parts: Any) -> None:
    """If-Match on an empty ETag binds nothing: parts could come from two versions."""
    s3 = s3_client(stack)

    def no_etag(call: int, answer: Any) -> Any:
        answer.pop("ETag", None)
        return answer

    one, two = _put(s3, PART), _put(s3, PART + 1)
    data = s3.get_object(Bucket="mlflow", Key=one)["Body"].read()
    digest = small_parts.object_sha256(_Edited(s3, no_etag), "mlflow", one)
    assert digest == hashlib.sha256(data).hexdigest()
    with pytest.raises(small_parts.ObjectChanged, match="no ETag"):
        small_parts.object_sha256(_Edited(s3, no_etag), "mlflow", two)


def test_a_checksum_failure_is_a_refusal_not_an_outage() -> None:
    """The plugin answers 503 ("try again") only for transport failures; bytes that fail the
    store's own checksum are refused like any other integrity failure."""
    from botocore.exceptions import EndpointConnectionError, FlexibleChecksumError

    from provenance.gate.mlflow._store import _unreachable

    assert _unreachable(EndpointConnectionError(endpoint_url="http://127.0.0.1:1"))
    assert not _unreachable(FlexibleChecksumError(error_msg="checksum mismatch"))


@pytest.mark.parametrize("change", ["shorter", "longer", "partial-answer"])
def test_recording_reads_objects_through_the_same_checks(stack: Stack, change: str) -> None:
    """The recorder's one-GET read (many objects at once, bounded memory) is the same hasher:
    a body not its announced length, or a 206 to a whole-object GET, is refused by URI."""
    import io

    from botocore.response import StreamingBody

    from provenance.errors import ArtifactError
    from provenance.hashing import objects

    s3 = s3_client(stack)
    key = _put(s3, 3 * PART + 5)
    got = objects.hash_object(s3, f"s3://mlflow/{key}")
    data = s3.get_object(Bucket="mlflow", Key=key)["Body"].read()
    assert got is not None and got[0] == hashlib.sha256(data).hexdigest()
    assert got[1].size == len(data) and got[1].etag

    def edit(call: int, answer: Any) -> Any:
        if change == "partial-answer":
            answer["ResponseMetadata"]["HTTPStatusCode"] = 206
            return answer
        body = answer["Body"].read()
        body = body[:-1] if change == "shorter" else body + b"x"
        answer["Body"] = StreamingBody(io.BytesIO(body), len(body))
        return answer

    with pytest.raises(ArtifactError, match=key):
        objects.hash_object(_Edited(s3, edit), f"s3://mlflow/{key}")
