"""Dataset manifests: one artifact for a dataset of any size, and the engines that hash it.

A manifest lists every member of a local directory or an `s3://` prefix (path, size, sha256;
ETag and VersionId for objects) in a canonical, sorted, streamable text format
(datasets/_format.py, docs/datasets.md); a link records the manifest file and its sha256 only,
so the link stays small whatever the dataset's size. `make_manifest` hashes the members with
the local engine or on Ray and writes the file atomically; `verify_dataset` re-hashes them
and names what is missing, extra or changed. `VerifiedShards` reads a dataset's shards once
each during training and yields a shard's records only once its bytes match the manifest.
"""

from __future__ import annotations

from provenance.datasets._chain import check_dataset_products
from provenance.datasets._dataset import Dataset
from provenance.datasets._engines import ENGINES
from provenance.datasets._loader import (
    READS_ENV,
    ReadStats,
    VerifiedShards,
    tar_samples,
    text_lines,
    whole_shard,
)
from provenance.datasets._manifest import ManifestInfo, make_manifest, members, scan
from provenance.datasets._sources import EngineStats
from provenance.datasets._torch import torch_dataset
from provenance.datasets._trusted import recorded_manifest
from provenance.datasets._verify import DatasetCheck, verify_dataset

__all__ = [
    "ENGINES",
    "READS_ENV",
    "Dataset",
    "DatasetCheck",
    "EngineStats",
    "ManifestInfo",
    "ReadStats",
    "VerifiedShards",
    "make_manifest",
    "check_dataset_products",
    "members",
    "recorded_manifest",
    "scan",
    "tar_samples",
    "text_lines",
    "torch_dataset",
    "verify_dataset",
    "whole_shard",
]
