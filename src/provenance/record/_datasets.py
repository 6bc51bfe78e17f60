"""Dataset materials and products: one manifest artifact each, whatever the dataset's size.

The manifest is written below the project root (datasets/_manifest.py: every member hashed
first, then one atomic write), recorded as an artifact under its relative path with its
sha256, and described in `environment.datasets` (source, kind, member count, bytes, engine).
A link therefore grows by one artifact per dataset, not by one per member.
"""

from __future__ import annotations

import contextlib
import json
import os
import tempfile
from collections.abc import Sequence
from typing import Any

from provenance import _config
from provenance.datasets import Dataset
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
    # Imported here: a step without datasets never loads the manifest writer.
    from provenance.datasets import make_manifest, scan

    digests: dict[str, str] = {}
    described: dict[str, dict[str, Any]] = {}
    for ds in datasets:
        rel = ds.manifest_path
        if rel in digests:
            raise UsageError(f"two datasets of one step share the manifest path {rel}")
        if ds.streamed:
            # Checked as it is read (VerifiedShards): only the existing manifest is hashed.
            info = scan(os.path.join(base, rel))
            engine = "verified while reading"
        else:
            info, stats = make_manifest(
                ds.source_path(base), os.path.join(base, rel), engine=ds.engine, quiet=quiet
            )
            engine = stats.engine
        digests[rel] = info.sha256
        described[rel] = {
            "source": ds.source,
            "kind": info.kind,
            "members": info.members,
            "bytes": info.bytes,
            "engine": engine,
        }
    return digests, described


MAX_READS_BYTES = 1 << 20  # what loaders report: one short line per iteration


def start_reads() -> str:
    """A file of this step's own for the loaders' reports, named in READS_ENV for them."""
    from provenance.datasets import READS_ENV

    fd, path = tempfile.mkstemp(prefix="provenance-reads-", suffix=".jsonl")
    os.close(fd)
    _config.set_environment(READS_ENV, path)
    return path


def collect_reads(path: str) -> dict[str, dict[str, Any]]:
    """Manifest sha256 -> shards and bytes read (summed over loaders), whether all ended."""
    from provenance.datasets import READS_ENV

    _config.set_environment(READS_ENV, None)
    try:
        with open(path, "rb") as f:
            data = f.read(MAX_READS_BYTES)
    except OSError:
        data = b""
    finally:
        with contextlib.suppress(OSError):
            os.unlink(path)
    reads: dict[str, dict[str, Any]] = {}
    for line in data.splitlines():
        try:
            doc = json.loads(line)
        except ValueError:
            continue
        sha = doc.get("manifest_sha256") if isinstance(doc, dict) else None
        if not isinstance(sha, str) or not all(
            type(doc.get(k)) is int for k in ("members", "shards_read", "bytes_read")
        ):
            continue
        entry = reads.setdefault(
            sha,
            {
                "members": doc["members"],
                "shards_read": 0,
                "bytes_read": 0,
                "loaders": 0,
                "completed": True,
            },
        )
        entry["shards_read"] += doc["shards_read"]
        entry["bytes_read"] += doc["bytes_read"]
        entry["loaders"] += 1
        entry["completed"] = entry["completed"] and doc.get("completed") is True
    return reads
