"""The Ray engine: members hashed as Ray tasks, in batches sized by bytes.

The driver lists the members (a directory walk with a stat each, or the paginated S3 listing),
cuts the listing into batches of about `batch_bytes` (`[tool.provenance] ray_batch_bytes`, at
most `BATCH_MEMBERS` members), and keeps a few batches per cluster CPU in flight. Each task
runs `hash_batch` on a cluster node, reading the same shared filesystem path or the same
objects. A worker that dies mid-batch is retried by Ray (`max_retries`); a member that cannot
be read comes back as a value naming it and fails the whole manifest. Ray ships the task's
arguments and results with its own serialisation, so the cluster is trusted like this machine:
whoever runs its nodes chooses the digests they return.

`ray` is imported here only, when this engine is asked for.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from typing import Any

from provenance import _config
from provenance._config import setting
from provenance.datasets._sources import (
    Advance,
    BatchResult,
    EngineStats,
    LocalSource,
    ObjectSource,
    Sink,
    Spec,
    hash_batch,
)
from provenance.errors import (
    ArtifactError,
    InfrastructureError,
    InputError,
    ProvenanceError,
    UsageError,
)

EXTRA = "ray"
BATCH_BYTES = 64 << 20
BATCH_MEMBERS = 2000  # small files: one task per 2000 keeps the per-task overhead small
IN_FLIGHT_PER_CPU = 2
MAX_RETRIES = 3
OBJECT_STORE_BYTES = 100 << 20  # a local cluster started here: results are small
_FORWARDED = ("AWS_", "MLFLOW_S3_ENDPOINT_URL")  # S3 settings the tasks need


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise UsageError(f"--engine ray needs Ray: pip install 'ml-provenance[{EXTRA}]'") from None
    return ray


def batch_bytes() -> int:
    """Bytes per task: `ray_batch_bytes` setting or 64 MiB."""
    text = setting("ray_batch_bytes")
    if text is None:
        return BATCH_BYTES
    if not text.isdigit() or int(text) < 1:
        raise InputError("ray_batch_bytes", f"{text!r} is not a positive number of bytes")
    return int(text)


def batches(listing: Iterator[tuple[str, int]], limit: int) -> Iterator[list[str]]:
    """Consecutive members grouped until a batch holds `limit` bytes or BATCH_MEMBERS names."""
    batch: list[str] = []
    held = 0
    for name, size in listing:
        batch.append(name)
        held += size
        if held >= limit or len(batch) >= BATCH_MEMBERS:
            yield batch
            batch, held = [], 0
    if batch:
        yield batch


def hash_dataset_batch(
    spec: Spec, names: list[str]
) -> tuple[int, BatchResult, tuple[str, int] | None]:
    """The Ray task body: the worker's pid, `hash_batch`'s result, and any other refusal.

    Objects are fetched a few at a time (threads hide the request latency), files one after
    another (Ray already runs one task per core). An error of ours (S3 refusing
    the credentials, say) comes back as (message, exit code): plain values, so the driver
    never has to rebuild an exception object the cluster sent.
    """
    try:
        return os.getpid(), hash_batch(spec, names, parallel=spec[0] == "s3"), None
    except ProvenanceError as exc:
        return os.getpid(), ([], None), (str(exc), exc.exit_code)


def _task_env(source: LocalSource | ObjectSource) -> dict[str, str]:
    """The driver's S3 settings, for tasks that read objects."""
    if source.kind != "s3":
        return {}
    return _config.environment_copy(lambda k: k.startswith(_FORWARDED))


def _connect(ray: Any, source: LocalSource | ObjectSource) -> bool:
    """Join the cluster RAY_ADDRESS names, else start a local one; True when we started it."""
    if ray.is_initialized():
        return False
    address = _config.environment("RAY_ADDRESS") or None
    options: dict[str, Any] = {
        "log_to_driver": False,
        "logging_level": logging.WARNING,
    }
    if address is None:
        # Never join a stranger's cluster by accident: "local" always starts a private one.
        options.update(
            address="local",
            include_dashboard=False,
            object_store_memory=OBJECT_STORE_BYTES,
        )
    else:
        options["address"] = address
    try:
        ray.init(**options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        raise InfrastructureError(f"Ray: cannot reach the cluster at {address}: {exc}") from None
    return True


def run(
    source: LocalSource | ObjectSource,
    sink: Sink,
    advance: Advance,
    set_total: Callable[[int], None],
) -> EngineStats:
    """Hash every member of `source` on Ray, feeding `sink` as batches complete."""
    ray = _import_ray()
    limit = batch_bytes()
    started = _connect(ray, source)
    stats = EngineStats("ray")
    pending: dict[Any, int] = {}
    try:
        # The S3 settings go with each task, also on a cluster the caller had joined already.
        task = ray.remote(num_cpus=1, max_retries=MAX_RETRIES, retry_exceptions=False)(
            hash_dataset_batch
        ).options(runtime_env={"env_vars": _task_env(source)})
        cpus = int(ray.cluster_resources().get("CPU", 1)) or 1
        window = IN_FLIGHT_PER_CPU * cpus + 1
        total = 0
        for batch in batches(source.listing(sizes=True), limit):
            while len(pending) >= window:
                _collect(ray, pending, sink, advance, stats)
            pending[task.remote(source.spec, batch)] = len(batch)
            total += len(batch)
        set_total(total)
        while pending:
            _collect(ray, pending, sink, advance, stats)
    finally:
        for ref in pending:
            ray.cancel(ref)
        if started:
            ray.shutdown()
    return stats


def _collect(
    ray: Any, pending: dict[Any, int], sink: Sink, advance: Advance, stats: EngineStats
) -> None:
    done, _ = ray.wait(list(pending), num_returns=1)
    for ref in done:
        count = pending.pop(ref)
        try:
            pid, (lines, failed), refused = ray.get(ref)
        except ray.exceptions.RayError as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InfrastructureError(f"Ray: a hashing task failed: {first}") from None
        if refused:
            message, code = refused
            if code == InfrastructureError.exit_code:
                raise InfrastructureError(message)
            raise InputError(None, message)
        if failed:
            raise ArtifactError(*failed)
        sink(lines)
        stats.batches += 1
        stats.workers.add(pid)
        advance(count)
