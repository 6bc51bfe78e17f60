"""A PyTorch `IterableDataset` over `VerifiedShards` (torch imported only when one is made).

With a `DataLoader` of several workers, worker i of n reads the i-th of every n shards of its
own verified copy of the manifest, so each shard is still read, and verified, exactly once per
epoch. Every worker holds the shards to one manifest: the digest the loader was given
(`expect_sha256`), else the manifest's digest when `torch_dataset` was called; a manifest that
changes afterwards is refused by each worker instead of splitting the shards differently.
"""

from __future__ import annotations

import copy
import importlib
from collections.abc import Iterator
from typing import Any

from provenance.datasets._loader import VerifiedShards
from provenance.datasets._manifest import scan
from provenance.errors import UsageError


def torch_dataset(source: VerifiedShards[Any]) -> Any:
    """`torch.utils.data.IterableDataset` yielding `source`'s records, shards split by worker."""
    try:
        data = importlib.import_module("torch.utils.data")
    except ImportError:
        raise UsageError("torch_dataset needs PyTorch (pip install torch)") from None
    pinned = source.expect_sha256 or scan(source.manifest).sha256

    class VerifiedIterable(data.IterableDataset):  # type: ignore[misc, name-defined]
        def __iter__(self) -> Iterator[Any]:
            info = data.get_worker_info()
            part = copy.copy(source)
            part.expect_sha256 = pinned
            if info is not None:
                part._part = (info.id, info.num_workers)
            try:
                yield from part
            finally:
                if info is None:  # read in this process: the caller's stats say what was read
                    source.stats = part.stats

    return VerifiedIterable()
