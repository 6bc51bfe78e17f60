"""Dataset materials and products: one manifest artifact each, whatever the dataset's size.

The manifest is written below the project root (datasets/_manifest.py: every member hashed
first, then one atomic write), recorded as an artifact under its relative path with its
sha256, and described in `environment.datasets` (source, kind, member count, bytes, engine).
A link therefore grows by one artifact per dataset, not by one per member.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from provenance.datasets import Dataset, make_manifest
from provenance.errors import UsageError


def split(
    name: str, items: Sequence[Any], label: str
) -> tuple[tuple[str, ...], tuple[Dataset, ...]]:
    """(patterns, datasets) of a step's `materials` or `products` list."""
    if isinstance(items, str):
        raise UsageError(f"step '{name}': {label} must be a list of patterns")
    patterns = tuple(i for i in items if not isinstance(i, Dataset))
    datasets = tuple(i for i in items if isinstance(i, Dataset))
    if not all(isinstance(p, str) for p in patterns):
        raise UsageError(f"step '{name}': {label} must be patterns (str) or Dataset(...)")
    return patterns, datasets


def record(
    base: str, datasets: Sequence[Dataset], quiet: bool
) -> tuple[dict[str, str], dict[str, dict[str, Any]]]:
    """Write each dataset's manifest; (manifest path -> sha256, manifest path -> description)."""
    digests: dict[str, str] = {}
    described: dict[str, dict[str, Any]] = {}
    for ds in datasets:
        rel = ds.manifest_path
        if rel in digests:
            raise UsageError(f"two datasets of one step share the manifest path {rel}")
        info, stats = make_manifest(
            ds.source_path(base), os.path.join(base, rel), engine=ds.engine, quiet=quiet
        )
        digests[rel] = info.sha256
        described[rel] = {
            "source": ds.source,
            "kind": info.kind,
            "members": info.members,
            "bytes": info.bytes,
            "engine": stats.engine,
        }
    return digests, described
