"""Phase 8 for object-store artifacts: the objects in the bucket must be the recorded ones.

The same check as for local files (verification/_files.py), against `s3://bucket/key` URIs:
each recorded product object (its latest digest in layout order) and each source material object
(read by a step, produced by none) is re-hashed by streaming it; every object under a step's
product prefixes that no step recorded is reported as extra. A changed object's message also says
how its size, ETag or VersionId moved since the link recorded them (environment.objects).
S3 unreachable, refusing the credentials or missing the bucket is exit 4 (ComponentError).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace
from typing import Any, TypeVar

from provenance.hashing import Manifest, objects
from provenance.links import LinkData
from provenance.verification._diff import failures_from_diff
from provenance.verification.result import Failure

WHERE = "the object store"

Claims = list[tuple[str, str]]  # (pattern, step)
Expected = dict[str, tuple[str, str]]  # artifact -> (sha256, step)
V = TypeVar("V")


def split_objects(
    expected: dict[str, V], claims: Claims
) -> tuple[dict[str, V], Claims, dict[str, V], Claims]:
    """(local expected, local claims, object expected, object claims)."""
    uri = objects.is_object_uri
    if not any(map(uri, expected)) and not any(uri(p) for p, _ in claims):
        return expected, claims, {}, []  # no copy of a million local products
    return (
        {p: v for p, v in expected.items() if not uri(p)},
        [(p, s) for p, s in claims if not uri(p)],
        {p: v for p, v in expected.items() if uri(p)},
        [(p, s) for p, s in claims if uri(p)],
    )


def source_materials(layout: Any, links: Mapping[str, LinkData]) -> Expected:
    """Object materials no step produced (the datasets a pipeline started from), first reader."""
    found: Expected = {}
    for step in layout.steps:
        link = links.get(step.name)
        if link is None:
            continue
        # Only object URIs are looked up (no set of a million local products is built).
        for path in filter(objects.is_object_uri, link.materials):
            if path not in found and not any(path in lk.products for lk in links.values()):
                found[path] = (link.materials[path]["sha256"], step.name)
    return found


def _recorded(links: Mapping[str, LinkData]) -> dict[str, objects.ObjectInfo]:
    """URI -> what the links last said about the object (informational, for messages)."""
    info: dict[str, objects.ObjectInfo] = {}
    for link in links.values():
        recorded = link.environment.get("objects")
        if not isinstance(recorded, dict):
            continue
        for kind in ("materials", "products"):
            entries = recorded.get(kind)
            if isinstance(entries, dict):
                for uri, value in entries.items():
                    parsed = objects.ObjectInfo.from_dict(value)
                    if parsed is not None:
                        info[uri] = parsed
    return info


def check_objects(
    layout: Any,
    links: Mapping[str, LinkData],
    expected: Expected,
    claims: Claims,
    *,
    sources: bool = True,
) -> tuple[int, list[Failure]]:
    """Re-hash the expected objects and list the claimed prefixes; (objects checked, failures).

    `sources`: also re-hash the source material objects (not when only some artifacts are asked).
    """
    want = {**(source_materials(layout, links) if sources else {}), **expected}
    if not want and not claims:
        return 0, []
    s3 = objects.client()
    owner = {p: step for p, (_, step) in expected.items()}
    present = set(want)
    compiled = [(objects.ObjectPattern.compile(p), step) for p, step in claims]
    for pattern, step in compiled:
        for uri in objects.claimed_objects(s3, pattern):
            present.add(uri)
            owner.setdefault(uri, step)
    got = objects.hash_uris(s3, sorted(present))
    actual = {uri: found[0] for uri, found in got.items() if found is not None}
    changes = list(Manifest({p: sha for p, (sha, _) in want.items()}).diff(actual))
    failures = failures_from_diff(changes, WHERE, owner)
    recorded = _recorded(links)
    out = []
    for failure in failures:
        found = got.get(failure.artifact or "")
        moved = found[1].changes(recorded.get(failure.artifact or "")) if found else ""
        out.append(replace(failure, message=f"{failure.message} ({moved})") if moved else failure)
    return len(actual), out
