"""Object-store materials and products (`s3://bucket/prefix/**`) of a step being recorded.

Their digests join the local ones in the link's materials/products (sha256, under the URI); what
the store said about the hashed bytes (size, ETag, VersionId) goes to `environment.objects`,
where upstream in-toto ignores it. A pattern that selects no object is a warning here: the
layout's rules and `verify` decide whether the step had to produce something.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from provenance.hashing import ArtifactSet, objects

log = logging.getLogger("provenance")


def hash_into(
    step: str, what: str, patterns: Sequence[str], artifacts: ArtifactSet
) -> dict[str, dict[str, Any]]:
    """Hash the object URIs among `patterns` into `artifacts`; return URI -> size/ETag/version."""
    selected = objects.split_patterns(patterns)[1]
    if not selected:
        return {}
    found = objects.hash_objects(selected)
    for pattern in found.unmatched:
        log.warning("step '%s': %s pattern '%s' matched no object", step, what, pattern)
    artifacts.add(found.digests)
    return found.info_dict()
