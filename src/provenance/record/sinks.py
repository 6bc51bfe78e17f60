"""Where links go: `LinkSink`s the recorder hands each signed link to, in order.

A step's link is first signed and written atomically into its links directory (the
`DirectorySink`, always first: `provenance verify` reads it there, next to the run's `RUN_ID`).
Only a step that finished gets that far, so a failed step leaves no link anywhere. Then every
further sink stores the same file: the active MLflow run's artifacts (built in), a directory
or an object store every task reaches (`sink_for`: `CopySink`, `ObjectStoreSink`), an
orchestrator's artifact store (added with `add_link_sink`). A sink that raises fails the step
after the local link exists, as a failed upload always has.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from provenance.errors import UsageError
from provenance.hashing import objects
from provenance.links import put_object_link, write_link
from provenance.record._mlflow_run import MlflowRunSink

if TYPE_CHECKING:
    from securesystemslib.signer import Signer


@dataclass(frozen=True)
class StoredLink:
    """A signed link as its step wrote it."""

    step: str
    path: str  # the link file in the links directory, complete (written atomically)
    environment: Mapping[str, Any]  # its environment block: pipeline_run_id, mlflow_run_id, ...


class LinkSink(Protocol):
    """Somewhere a step's signed link is stored besides its links directory."""

    def store(self, link: StoredLink) -> str | None:
        """Store the link file `link.path`.

        Returns:
            Where it went (for the log), or None when this sink does not apply to the link
            (e.g. no MLflow run was active).
        """
        ...


class DirectorySink:
    """The links directory: where each link is signed into a file first."""

    def __init__(self, links_dir: str) -> None:
        self.links_dir = links_dir

    def write(
        self, payload: bytes | bytearray, signer: Signer, step: str, environment: Mapping[str, Any]
    ) -> StoredLink:
        """Sign `payload` into ``<step>.<keyid[:8]>.link`` atomically."""
        return StoredLink(step, write_link(payload, signer, step, self.links_dir), environment)


@dataclass(frozen=True)
class CopySink:
    """Copies each link, as signed, into `directory` (a shared volume, a mounted bucket).

    The copy is atomic (a temporary file renamed into place): a reader never sees part of it.
    """

    directory: str

    def store(self, link: StoredLink) -> str | None:
        """Copy `link.path` to ``DIRECTORY/<its name>``."""
        os.makedirs(self.directory, exist_ok=True)
        dest = os.path.join(self.directory, os.path.basename(link.path))
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as out, open(link.path, "rb") as src:
                shutil.copyfileobj(src, out)
            os.replace(tmp, dest)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise
        return dest


@dataclass(frozen=True)
class ObjectStoreSink:
    """Stores each link, as signed, under ``s3://bucket/prefix/``, written once.

    One PUT that does not replace an existing object (`links.put_object_link`): only a retry
    of the same run's step may replace its own earlier link. Credentials and endpoint come
    from the standard environment (AWS_*, ``AWS_ENDPOINT_URL``, ``MLFLOW_S3_ENDPOINT_URL``).
    ``provenance verify --links LOCATION`` accepts only links whose run id the location's last
    segment is named for (`links.run_name`), as `RunLinksSink` names it.
    """

    location: str

    def __post_init__(self) -> None:
        objects.parse_uri(self.location, what="links location")

    def store(self, link: StoredLink) -> str | None:
        """PUT `link.path` as ``LOCATION/<its name>``."""
        run_id = link.environment.get("pipeline_run_id")
        return put_object_link(
            self.location, link.path, run_id if isinstance(run_id, str) else None
        )


def sink_for(location: str) -> CopySink | ObjectStoreSink:
    """The sink for `location`, by its scheme: ``s3://…`` an object store, else a directory."""
    if objects.is_object_uri(location):
        return ObjectStoreSink(location.rstrip("/"))
    if "://" in location:
        raise UsageError(
            f"links location {location!r}: only s3:// URIs and directories are supported"
        )
    return CopySink(location)


_BUILTIN: tuple[LinkSink, ...] = (MlflowRunSink(),)
_ADDED: list[LinkSink] = []


def add_link_sink(sink: LinkSink) -> None:
    """Also store every link in `sink`, after the built-in sinks; adding it again does nothing."""
    if sink not in _ADDED:
        _ADDED.append(sink)


def remove_link_sink(sink: LinkSink) -> None:
    """Stop storing links in `sink` (added with `add_link_sink`)."""
    if sink in _ADDED:
        _ADDED.remove(sink)


def link_sinks() -> list[LinkSink]:
    """The sinks after the links directory, in the order they store a link."""
    return [*_BUILTIN, *_ADDED]


def publish(link: StoredLink) -> list[str]:
    """Hand `link` to every sink in order; return where it went."""
    return [where for sink in link_sinks() if (where := sink.store(link)) is not None]
