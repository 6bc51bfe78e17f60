"""Object-store artifacts: `s3://bucket/key` patterns, listing, and sha256 of streamed bytes.

DESIGN: an object is recorded under its URI with the sha256 of its bytes, like a local file under
its path. Bodies are streamed by the one S3 hasher (`_s3_read`: one GET per object here, read
through a reused 1 MiB buffer, every answer checked), never copied to disk or held whole, and a
few objects are hashed at once, so memory stays at a few chunks whatever the object size.
Size, ETag and VersionId are kept beside the digests (`ObjectInfo`), never inside the link's
digest dicts: upstream in-toto compares those dicts between links, so only `sha256` goes there.
boto3 is imported when the first object is touched; credentials and endpoint come from the
standard environment (AWS_*, `AWS_ENDPOINT_URL`, or MLflow's `MLFLOW_S3_ENDPOINT_URL`).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from provenance import _config
from provenance.errors import ArtifactError, ComponentError, PatternError
from provenance.hashing._patterns import Pattern, check_glob, has_glob

if TYPE_CHECKING:
    from provenance.hashing._s3_read import ObjectChanged, ObjectRead, object_sha256, read_object

__all__ = [  # what other packages use, through `provenance.hashing.objects`
    "COMPONENT",
    "SCHEME",
    "ObjectChanged",
    "ObjectInfo",
    "ObjectPattern",
    "ObjectRead",
    "ObjectSet",
    "claimed_objects",
    "client",
    "compile_any",
    "endpoint",
    "hash_object",
    "hash_objects",
    "hash_uris",
    "is_object_uri",
    "list_objects",
    "local_patterns",
    "object_sha256",
    "parse_uri",
    "read_object",
    "split_patterns",
    "unsafe_artifacts",
]

# The S3 reader is loaded with the first object (a step without s3:// artifacts never needs it).
_S3_READ = ("ObjectChanged", "ObjectRead", "object_sha256", "read_object")


def __getattr__(name: str) -> Any:
    """The S3 reader's names, imported on first use."""
    if name in _S3_READ:
        from provenance.hashing import _s3_read

        return getattr(_s3_read, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


SCHEME = "s3://"
COMPONENT = "S3"
PARALLEL = 4  # objects hashed at once: bounded memory, enough to hide request latency
TIMEOUT = 10.0
_BUCKET = re.compile(r"[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]\Z")
_DENIED = ("SignatureDoesNotMatch", "InvalidAccessKeyId", "InvalidClientTokenId", "InvalidToken")
_MISSING = ("NoSuchKey", "404", "NotFound")


def is_object_uri(text: str) -> bool:
    """True for an object-store URI (`s3://…`); everything else is a local path or pattern."""
    return text.startswith(SCHEME)


def parse_uri(text: str, *, what: str = "object URI") -> tuple[str, str]:
    """(bucket, key) of a well-formed `s3://bucket/key`; PatternError naming it otherwise.

    The key is normalised the way local paths are: no empty, '.' or '..' segments, no NUL or
    backslash, so one object has exactly one recorded name.
    """

    def bad(why: str) -> PatternError:
        return PatternError(None, f"invalid {what} {text!r}: {why}")

    if not is_object_uri(text):
        raise bad("must start with s3://")
    bucket, _, key = text[len(SCHEME) :].partition("/")
    if not bucket:
        raise bad("no bucket (expected s3://bucket/key)")
    if not _BUCKET.match(bucket) or ".." in bucket:
        raise bad(f"'{bucket}' is not a valid bucket name")
    key = key.rstrip("/") if key.rstrip("/") else key
    if "\x00" in key or "\\" in key:
        raise bad("the key contains NUL or a backslash")
    if key and any(part in ("", ".", "..") for part in key.split("/")):
        raise bad("the key has an empty, '.' or '..' segment")
    return bucket, key


@dataclass(frozen=True)
class ObjectPattern:
    """`s3://bucket/<glob>`: the key part has the glob semantics of local patterns."""

    text: str
    bucket: str
    key: Pattern | None  # None: the whole bucket

    @classmethod
    def compile(cls, text: str) -> ObjectPattern:
        check_glob(text)
        bucket, key = parse_uri(text, what="object pattern")
        if has_glob(bucket):
            raise PatternError(None, f"invalid object pattern {text!r}: glob in the bucket name")
        return cls(text, bucket, Pattern.compile(key) if key else None)

    @property
    def prefix(self) -> str:
        """The listing prefix: the literal directory part of the key."""
        if self.key is None or not self.key.root:
            return ""
        # A plain key names an object or a "directory"; a glob lists below its literal part.
        return self.key.root + "/" if has_glob(self.key.text) else self.key.root

    @property
    def root_uri(self) -> str:
        """The URI of the directory this pattern claims (its extra objects are reported)."""
        return f"{SCHEME}{self.bucket}/{self.key.root if self.key else ''}".rstrip("/")

    def matches(self, uri: str) -> bool:
        head = f"{SCHEME}{self.bucket}/"
        if not uri.startswith(head):
            return False
        return self.key is None or self.key.matches(uri[len(head) :])

    def claims(self, uri: str) -> bool:
        """`uri` lies under the directory this pattern names, or matches it."""
        root = self.root_uri
        return self.matches(uri) or uri.startswith(root + "/")


def split_patterns(patterns: Iterable[str]) -> tuple[list[str], list[ObjectPattern]]:
    """(local patterns, compiled object patterns); a malformed object URI raises PatternError."""
    local: list[str] = []
    objects: list[ObjectPattern] = []
    for p in patterns:
        if isinstance(p, str) and is_object_uri(p):
            objects.append(ObjectPattern.compile(p))
        else:
            local.append(p)
    return local, objects


def local_patterns(patterns: Iterable[str]) -> list[str]:
    """The patterns that name local files (object URIs are checked and left out)."""
    return split_patterns(patterns)[0]


def compile_any(text: str) -> Pattern | ObjectPattern:
    """One pattern, local or object URI (both match their recorded names with `.matches`)."""
    return ObjectPattern.compile(text) if is_object_uri(text) else Pattern.compile(text)


def unsafe_artifacts(paths: Iterable[str]) -> list[str]:
    """Recorded names that are neither a safe relative path nor a well-formed object URI."""
    from provenance.hashing._paths import unsafe_paths

    local, bad = [], []
    for p in paths:
        if not is_object_uri(p):
            local.append(p)
            continue
        try:
            bucket, key = parse_uri(p)
        except PatternError:
            bad.append(p)
            continue
        if not key or f"{SCHEME}{bucket}/{key}" != p:
            bad.append(p)
    return unsafe_paths(local) + bad


@dataclass(frozen=True)
class ObjectInfo:
    """What the store said about the bytes that were hashed."""

    size: int
    etag: str
    version_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"size": self.size, "etag": self.etag}
        if self.version_id:
            out["version_id"] = self.version_id
        return out

    @classmethod
    def from_dict(cls, value: Any) -> ObjectInfo | None:
        """Lenient reader for what a link recorded (informational: the digest is what counts)."""
        if not isinstance(value, dict):
            return None
        size, etag, vid = value.get("size"), value.get("etag"), value.get("version_id")
        if type(size) is not int or not isinstance(etag, str):
            return None
        return cls(size, etag, vid if isinstance(vid, str) else None)

    def changes(self, recorded: ObjectInfo | None) -> str:
        """'size 10 -> 12, ETag "a" -> "b"' for what differs from `recorded` ('' if nothing)."""
        if recorded is None:
            return ""
        parts = []
        if recorded.size != self.size:
            parts.append(f"size {recorded.size} -> {self.size}")
        if recorded.etag != self.etag:
            parts.append(f"ETag {recorded.etag} -> {self.etag}")
        if recorded.version_id and recorded.version_id != self.version_id:
            parts.append(f"VersionId {recorded.version_id} -> {self.version_id}")
        return ", ".join(parts)


@dataclass
class ObjectSet:
    """URI -> sha256 hex digest, and URI -> what the store said about those bytes."""

    digests: dict[str, str] = field(default_factory=dict)
    info: dict[str, ObjectInfo] = field(default_factory=dict)
    unmatched: list[str] = field(default_factory=list)  # patterns that selected nothing

    def info_dict(self) -> dict[str, dict[str, Any]]:
        return {uri: self.info[uri].to_dict() for uri in sorted(self.info)}


def endpoint() -> str | None:
    """The S3 endpoint the environment names (None: AWS itself)."""
    for name in ("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL", "MLFLOW_S3_ENDPOINT_URL"):
        value = _config.environment(name)
        if value:
            return value
    return None


def client() -> Any:
    """A boto3 S3 client from the standard environment (path-style for a custom endpoint)."""
    try:
        import boto3
        from botocore.config import Config
    except ImportError:
        raise ComponentError(
            COMPONENT,
            "object-store artifacts need boto3: pip install 'ml-provenance[s3]'",
        ) from None
    url = endpoint()
    # A session of its own: boto3's default session caches the credentials it first read.
    return boto3.session.Session().client(
        "s3",
        endpoint_url=url,
        region_name=(
            _config.environment("AWS_DEFAULT_REGION") or _config.environment("AWS_REGION") or None
        ),
        config=Config(
            s3={"addressing_style": "path"} if url else {},
            retries={"max_attempts": 2, "mode": "standard"},
            connect_timeout=TIMEOUT,
            read_timeout=60,
            max_pool_connections=PARALLEL * 2,
        ),
    )


def _where() -> str:
    return endpoint() or "AWS S3"


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0].strip() if lines else type(exc).__name__


def _fail(exc: BaseException, bucket: str) -> ComponentError:
    """One line naming S3, where, and the cause (credentials, bucket, reachability)."""
    where = _where()
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ComponentError(COMPONENT, f"{where} unreachable or refused ({_first_line(exc)})")
    code = str(response.get("Error", {}).get("Code", ""))
    key = _config.environment("AWS_ACCESS_KEY_ID") or "(none)"
    if code == "NoSuchBucket":
        return ComponentError(COMPONENT, f"bucket '{bucket}' does not exist at {where}")
    if code in _DENIED:
        return ComponentError(
            COMPONENT,
            f"{where} refused the credentials of access key {key} ({code}: wrong "
            "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)",
        )
    if code in ("AccessDenied", "403"):
        return ComponentError(
            COMPONENT,
            f"access key {key} may not read bucket '{bucket}' at {where} (the bucket does not "
            "exist or the key has no access to it)",
        )
    return ComponentError(COMPONENT, f"{where}: {code or 'error'} on bucket '{bucket}'")


def _missing(exc: BaseException) -> bool:
    response = getattr(exc, "response", None)
    code = str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else ""
    return code in _MISSING


def list_objects(s3: Any, pattern: ObjectPattern) -> list[str]:
    """Every object URI under the pattern's prefix that it matches (or claims, for extras)."""
    return [u for u in _listing(s3, pattern) if pattern.matches(u)]


def _listing(s3: Any, pattern: ObjectPattern) -> Iterator[str]:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        pages = s3.get_paginator("list_objects_v2").paginate(
            Bucket=pattern.bucket, Prefix=pattern.prefix
        )
        for page in pages:
            for item in page.get("Contents", []):
                key = item["Key"]
                if not key.endswith("/"):  # directory markers are not objects
                    yield f"{SCHEME}{pattern.bucket}/{key}"
    except (BotoCoreError, ClientError) as exc:
        raise _fail(exc, pattern.bucket) from None


def claimed_objects(s3: Any, pattern: ObjectPattern) -> list[str]:
    """Every object in the directory the pattern claims (to find objects no step recorded)."""
    return [u for u in _listing(s3, pattern) if pattern.claims(u)]


def hash_object(s3: Any, uri: str) -> tuple[str, ObjectInfo] | None:
    """sha256 of one object's streamed bytes and what the store said; None when it is absent.

    Read by the one S3 hasher (`hashing._s3_read`, one GET, every answer checked); an object
    that changed while it was read is an ArtifactError naming it.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    from provenance.hashing._s3_read import ObjectChanged, read_object

    bucket, key = parse_uri(uri)
    try:
        got = read_object(s3, bucket, key, ranged=False)
    except ClientError as exc:
        if _missing(exc):
            return None
        raise _fail(exc, bucket) from None
    except BotoCoreError as exc:
        raise _fail(exc, bucket) from None
    except ObjectChanged as exc:
        raise ArtifactError(uri, str(exc)) from None
    return got.sha256, ObjectInfo(got.size, got.etag, got.version_id)


def hash_uris(s3: Any, uris: Sequence[str]) -> dict[str, tuple[str, ObjectInfo] | None]:
    """Hash every URI, a few at a time; an absent object maps to None."""
    if not uris:
        return {}
    with ThreadPoolExecutor(max_workers=min(PARALLEL, len(uris))) as pool:
        return dict(zip(uris, pool.map(lambda u: hash_object(s3, u), uris), strict=True))


def hash_objects(patterns: Sequence[ObjectPattern], s3: Any = None) -> ObjectSet:
    """Hash every object the patterns select; patterns that select nothing are listed."""
    result = ObjectSet()
    if not patterns:
        return result
    s3 = s3 or client()
    uris: set[str] = set()
    for pattern in patterns:
        found = list_objects(s3, pattern)
        if not found:
            result.unmatched.append(pattern.text)
        uris.update(found)
    for uri, got in sorted(hash_uris(s3, sorted(uris)).items()):
        if got is None:
            raise ArtifactError(uri, "object was deleted while the step was being recorded")
        result.digests[uri], result.info[uri] = got
    return result
