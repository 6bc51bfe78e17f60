"""Dataset manifests: one artifact for a dataset of any size, and the engines that hash it.

A manifest lists every member of a local directory or an `s3://` prefix (path, size, sha256;
ETag and VersionId for objects) in a canonical, sorted, streamable text format
(datasets/_format.py, docs/datasets.md); a link records the manifest file and its sha256 only,
so the link stays small whatever the dataset's size. `make_manifest` hashes the members with
the local engine or on Ray and writes the file atomically; `verify_dataset` re-hashes them
and names what is missing, extra or changed. `VerifiedShards` reads a dataset's shards once
each during training and yields a shard's records only once its bytes match the manifest.

Each name is imported from its module on first use (PEP 562): a step that records plain
files (`provenance run -m ...`, `@step`) needs `Dataset` and the engines, not the manifest
writer, the verifier or the loaders (tarfile, tempfile, the chain check).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from provenance._lazy import lazy_names

if TYPE_CHECKING:
    from provenance.datasets._chain import check_dataset_products
    from provenance.datasets._dataset import (
        Dataset,
        RecordedDataset,
        human_bytes,
        recorded_datasets,
    )
    from provenance.datasets._engines import ENGINES, hash_patterns
    from provenance.datasets._engines import choose as choose_engine
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

# public name -> (module, name in it)
_LAZY: dict[str, tuple[str, str]] = {
    "check_dataset_products": ("_chain", "check_dataset_products"),
    "Dataset": ("_dataset", "Dataset"),
    "RecordedDataset": ("_dataset", "RecordedDataset"),
    "human_bytes": ("_dataset", "human_bytes"),
    "recorded_datasets": ("_dataset", "recorded_datasets"),
    "ENGINES": ("_engines", "ENGINES"),
    "hash_patterns": ("_engines", "hash_patterns"),
    "choose_engine": ("_engines", "choose"),
    "READS_ENV": ("_loader", "READS_ENV"),
    "ReadStats": ("_loader", "ReadStats"),
    "VerifiedShards": ("_loader", "VerifiedShards"),
    "tar_samples": ("_loader", "tar_samples"),
    "text_lines": ("_loader", "text_lines"),
    "whole_shard": ("_loader", "whole_shard"),
    "ManifestInfo": ("_manifest", "ManifestInfo"),
    "make_manifest": ("_manifest", "make_manifest"),
    "members": ("_manifest", "members"),
    "scan": ("_manifest", "scan"),
    "EngineStats": ("_sources", "EngineStats"),
    "torch_dataset": ("_torch", "torch_dataset"),
    "recorded_manifest": ("_trusted", "recorded_manifest"),
    "DatasetCheck": ("_verify", "DatasetCheck"),
    "verify_dataset": ("_verify", "verify_dataset"),
}


__getattr__, __dir__ = lazy_names(__name__, _LAZY)

__all__ = [
    "ENGINES",
    "READS_ENV",
    "Dataset",
    "DatasetCheck",
    "EngineStats",
    "ManifestInfo",
    "ReadStats",
    "RecordedDataset",
    "VerifiedShards",
    "human_bytes",
    "make_manifest",
    "check_dataset_products",
    "choose_engine",
    "hash_patterns",
    "members",
    "recorded_datasets",
    "recorded_manifest",
    "scan",
    "tar_samples",
    "text_lines",
    "torch_dataset",
    "verify_dataset",
    "whole_shard",
]
