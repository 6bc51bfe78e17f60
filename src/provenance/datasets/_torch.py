"""A PyTorch `IterableDataset` over `VerifiedShards` (torch imported only when one is made).

With a `DataLoader` of several workers, each worker reads every n-th shard (`shards[id::n]`),
so each shard is still read, and verified, exactly once per epoch.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator
from typing import Any

from provenance.datasets._loader import VerifiedShards
from provenance.datasets._manifest import members
from provenance.errors import UsageError


def torch_dataset(source: VerifiedShards[Any]) -> Any:
    """`torch.utils.data.IterableDataset` yielding `source`'s records, shards split by worker."""
    try:
        data = importlib.import_module("torch.utils.data")
    except ImportError:
        raise UsageError("torch_dataset needs PyTorch (pip install torch)") from None

    class VerifiedIterable(data.IterableDataset):  # type: ignore[misc, name-defined]
        def __iter__(self) -> Iterator[Any]:
            info = data.get_worker_info()
            if info is None or info.num_workers == 1:
                return iter(source)
            # Names only: the worker's VerifiedShards checks each against its own verified copy.
            names = source.shards or [m.path for m in members(source.manifest)]
            return iter(
                VerifiedShards(
                    source.manifest,
                    source.root,
                    decode=source.decode,
                    shards=names[info.id :: info.num_workers],
                    expect_sha256=source.expect_sha256,
                )
            )

    return VerifiedIterable()
