"""The one seam between the gate and a model registry.

`promote`, `revoke` and `load_verified` speak only this protocol; MLflow is its first
implementation (`provenance.gate.mlflow`), and nothing outside that adapter imports mlflow.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from provenance.errors import UsageError

_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))\Z")


@dataclass(frozen=True)
class ModelVersion:
    """A registered version as the registry reports it (its tags are untrusted input)."""

    name: str
    version: str
    run_id: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()


def parse_model_uri(uri: str) -> tuple[str, str | None, str | None]:
    """models:/NAME@ALIAS or models:/NAME/VERSION -> (name, alias, version)."""
    m = _URI.match(uri)
    if not m:
        raise UsageError(f"'{uri}' is not models:/NAME@ALIAS or models:/NAME/VERSION")
    return m["name"], m["alias"], m["version"]


class Registry(Protocol):
    """What the gate needs from a model registry."""

    def get_version(self, name: str, version: str) -> ModelVersion: ...

    def get_by_alias(self, name: str, alias: str) -> ModelVersion | None:
        """The version holding `alias`, or None when no version holds it."""
        ...

    def download(self, name: str, version: str, dest: str) -> str:
        """Download the version's files under `dest`; return the directory holding them."""
        ...

    def download_links(self, run_id: str, dest: str) -> str:
        """Download the links a training run logged; return their directory."""
        ...

    def download_evidence(self, run_id: str, dest: str) -> str:
        """Download the evidence files (e.g. metrics) a run logged; return their directory
        (created empty when the run logged none), laid out by their recorded paths."""
        ...

    def set_tag(self, name: str, version: str, key: str, value: str) -> None: ...

    def set_alias(self, name: str, alias: str, version: str) -> None: ...

    def delete_alias(self, name: str, alias: str) -> None: ...
