"""Links kept in an object store (``s3://bucket/prefix/<run>/``): written once, gathered strictly.

Orchestrator tasks on different machines share no filesystem; each copies its signed link, as
signed, to its run's prefix. Nothing here is trusted: verification checks each link's signature
after it was gathered.

- **Writing** is one PUT with ``If-None-Match: *``: the object appears whole or not at all
  (the reader never sees part of a link), and an existing object is never replaced unless it is
  this run's own earlier link (a retried task), and then only with ``If-Match`` on the ETag
  that was read. A link of another run under the same name (run ids that differ only in
  characters a key cannot hold) is refused, never overwritten.
- **Gathering** lists exactly ``<prefix>/<run>/`` and downloads into a private directory only
  objects named ``<step>.<keyid[:8]>.link`` directly under it, for a step of the layout, each
  at most `MAX_LINK_BYTES` (checked in the listing and again while reading), at most
  `MAX_LINKS` of them. Any other object there (a subdirectory, ``../x.link``, a note, an
  oversized object) refuses the whole run by name (exit 3) before anything is downloaded.
"""

from __future__ import annotations

import os
import re
from collections.abc import Collection
from typing import Any

from provenance._fs import load_json_bounded
from provenance.errors import ComponentError, InputError, LinkFormatError, UsageError
from provenance.hashing import objects, printable
from provenance.links._files import FILE_RE
from provenance.signing import dsse

MAX_LINK_BYTES = dsse.MAX_ENVELOPE_BYTES  # what the link reader itself accepts
MAX_LINKS = 1000  # a run's directory: a few links per step
_PIECE = 1 << 20
_EXISTS = ("PreconditionFailed", "412", "ConditionalRequestConflict", "409")
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def run_name(run_id: str) -> str:
    """The name of the directory a pipeline run's links are kept in.

    The run id with every character but letters, digits, '.', '_' and '-' replaced by '_'
    (at most 200 characters): a key segment any store and filesystem holds as is.
    """
    if not run_id.strip():
        raise UsageError("the pipeline run id is empty: pass the orchestrator's run id")
    return _UNSAFE.sub("_", run_id.strip())[:200]


def _location(location: str) -> tuple[str, str]:
    """(bucket, run prefix with a trailing '/') of ``s3://bucket/prefix/RUN``."""
    bucket, key = objects.parse_uri(location, what="links location")
    if not key:
        raise UsageError(f"links location {location!r} names no prefix: s3://BUCKET/PREFIX/RUN")
    return bucket, key + "/"


def _code(exc: BaseException) -> str:
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code", ""))


def _s3_failed(exc: BaseException, bucket: str, doing: str) -> ComponentError:
    """One line naming the store, what was being done and why (exit 4)."""
    where = objects.endpoint() or "AWS S3"
    code = _code(exc)
    if code == "NoSuchBucket":
        return ComponentError(objects.COMPONENT, f"bucket '{bucket}' does not exist at {where}")
    if code:
        return ComponentError(objects.COMPONENT, f"{where} refused {doing} ({code})")
    lines = str(exc).strip().splitlines()
    cause = lines[0].strip() if lines else type(exc).__name__
    return ComponentError(objects.COMPONENT, f"{where} unreachable while {doing} ({cause})")


def _claimed_run(data: bytes, uri: str) -> str | None:
    """The run id the object at `uri` claims (unverified: only to decide not to overwrite it)."""
    env = dsse.parse(data, uri, "link")
    doc = load_json_bounded(env.payload, uri, what="link payload")
    environment = doc.get("environment") if isinstance(doc, dict) else None
    value = environment.get("pipeline_run_id") if isinstance(environment, dict) else None
    return value if isinstance(value, str) else None


def _read(s3: Any, bucket: str, key: str, limit: int, out: Any = None) -> tuple[bytes, str]:
    """The object's bytes (written to `out` instead when given) and the ETag of those bytes.

    More than `limit` bytes are refused, whatever the listing said (the object may have been
    replaced since).
    """
    uri = f"{objects.SCHEME}{bucket}/{key}"
    answer = s3.get_object(Bucket=bucket, Key=key)
    body = answer["Body"]
    got, kept = 0, bytearray()
    try:
        while piece := body.read(_PIECE):
            got += len(piece)
            if got > limit:
                raise InputError(uri, f"larger than the {limit} bytes a link may have; refused")
            if out is None:
                kept += piece
            else:
                out.write(piece)
    finally:
        body.close()
    return bytes(kept), str(answer.get("ETag") or "")


def put_object_link(location: str, path: str, run_id: str | None) -> str:
    """Store the link file `path` as ``LOCATION/<its name>``, written once; return its URI.

    Args:
        location: ``s3://bucket/prefix/RUN``, the run's directory in the store.
        path: the signed link file (copied byte for byte).
        run_id: the pipeline run the link belongs to: an existing object of that name is
            replaced only when it claims the same run (the task was retried).

    Raises:
        InputError: the name is taken by a link of another run, or by an object that is not
            a link (nothing is overwritten).
        ComponentError: the store is unreachable or refused the write (exit 4).
    """
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, prefix = _location(location)
    name = os.path.basename(path)
    if not FILE_RE.match(name):
        raise UsageError(f"{path}: not a link file name (<step>.<keyid[:8]>.link)")
    key = prefix + name
    uri = f"{objects.SCHEME}{bucket}/{key}"
    s3 = objects.client()
    try:
        with open(path, "rb") as f:
            try:
                s3.put_object(Bucket=bucket, Key=key, Body=f, IfNoneMatch="*")
                return uri
            except ClientError as exc:
                if _code(exc) not in _EXISTS:
                    raise
            existing, etag = _read(s3, bucket, key, MAX_LINK_BYTES)
            try:
                theirs = _claimed_run(existing, uri)
            except InputError:
                raise InputError(
                    uri, "exists and is not a link; not overwritten with this link"
                ) from None
            if not run_id or theirs != run_id:
                raise InputError(
                    uri,
                    f"holds a link of pipeline run {theirs or '(none)'}; this link of run "
                    f"{run_id or '(none)'} does not overwrite it (run ids that map to one "
                    "directory name? use distinct run ids or another prefix)",
                )
            f.seek(0)
            try:  # this run's own earlier link (a retried task): replace exactly what was read
                s3.put_object(Bucket=bucket, Key=key, Body=f, IfMatch=etag)
            except ClientError as exc:
                if _code(exc) in _EXISTS:
                    raise InputError(uri, "changed while it was being replaced") from None
                raise
    except (BotoCoreError, ClientError) as exc:
        raise _s3_failed(exc, bucket, f"storing {uri}") from None
    except OSError as exc:
        raise InputError(path, f"cannot read the link: {exc.strerror}") from None
    return uri


def gather_object_links(location: str, dest: str, steps: Collection[str]) -> str:
    """Download run `location`'s links for `steps` into the new private directory `dest`.

    Every object under ``LOCATION/`` is checked by its listed name and size first; one that
    is not ``<step>.<keyid[:8]>.link`` for a step in `steps`, directly under the run, at most
    `MAX_LINK_BYTES`, refuses the run (nothing is downloaded). Returns `dest`.

    Raises:
        InputError: an object refused by name or size, more than `MAX_LINKS` objects, or no
            link at all under the location (exit 3).
        ComponentError: the store is unreachable or refused the listing or a read (exit 4).
    """
    from botocore.exceptions import BotoCoreError, ClientError

    bucket, prefix = _location(location)
    shown = f"{objects.SCHEME}{bucket}/{prefix}"
    s3 = objects.client()
    wanted: list[str] = []
    refused: list[str] = []
    try:
        pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
        for page in pages:
            for item in page.get("Contents", []):
                name = str(item["Key"])[len(prefix) :]
                if not name:
                    continue  # the directory marker some tools create
                m = FILE_RE.match(name)
                if m is None:
                    refused.append(f"'{printable(name)}' is not <step>.<keyid[:8]>.link")
                elif m["step"] not in steps:
                    refused.append(f"'{name}' names step '{m['step']}', not one of the layout")
                elif int(item.get("Size", 0)) > MAX_LINK_BYTES:
                    refused.append(
                        f"'{name}' is {item['Size']} bytes, over the {MAX_LINK_BYTES} a link "
                        "may have"
                    )
                else:
                    wanted.append(name)
                if len(wanted) + len(refused) > MAX_LINKS:
                    raise InputError(shown, f"more than {MAX_LINKS} objects; not a run's links")
    except (BotoCoreError, ClientError) as exc:
        raise _s3_failed(exc, bucket, f"listing {shown}") from None
    if refused:
        more = f" (and {len(refused) - 5} more)" if len(refused) > 5 else ""
        raise LinkFormatError(shown, "refused: " + "; ".join(refused[:5]) + more)
    if not wanted:
        raise InputError(shown, "no links under this location (a wrong run or prefix?)")
    os.makedirs(dest, mode=0o700)
    try:
        for name in wanted:
            with open(os.path.join(dest, name), "xb") as out:
                _read(s3, bucket, prefix + name, MAX_LINK_BYTES, out)
    except (BotoCoreError, ClientError) as exc:
        raise _s3_failed(exc, bucket, f"reading {shown}") from None
    return dest
