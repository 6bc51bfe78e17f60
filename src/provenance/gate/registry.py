"""The one seam between the gate and a model registry, and the table that picks one by URI.

`promote`, `revoke`, `register` and `load_verified` speak only the `Registry` protocol. Which
registry a model URI names is decided by its scheme: ``models:/NAME/VERSION`` and
``models:/NAME@ALIAS`` are MLflow (`provenance.gate.mlflow`, imported only when used). Another
registry (a Hugging Face Hub repository, a Kubeflow model registry) is one package that
implements `Registry` and registers a `RegistryFactory` for its scheme, either by calling
`register_scheme` or through the ``provenance.registries`` entry-point group, so that
``provenance fetch hf://org/repo@champion`` finds it without any change here.
"""

from __future__ import annotations

import importlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

from provenance.errors import UsageError

_URI = re.compile(r"^models:/(?P<name>[^/@]+)(?:@(?P<alias>[^/@]+)|/(?P<version>\d+))\Z")
_SCHEME = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*):")

ENTRY_POINT_GROUP = "provenance.registries"
"""Entry points named after a URI scheme, each naming a `RegistryFactory` (``pkg.mod:Factory``)."""


@dataclass(frozen=True)
class ModelVersion:
    """A registered version as the registry reports it (its tags are untrusted input)."""

    name: str
    version: str
    run_id: str | None = None
    tags: Mapping[str, str] = field(default_factory=dict)
    aliases: tuple[str, ...] = ()


@dataclass(frozen=True)
class ModelRef:
    """A model named by a URI: one version of it, or the version an alias points at."""

    uri: str
    name: str
    alias: str | None = None
    version: str | None = None

    def __post_init__(self) -> None:
        if (self.alias is None) == (self.version is None):
            raise UsageError(f"'{self.uri}' must name exactly one of an alias or a version")


@dataclass(frozen=True)
class Registered:
    """A version a registry created from plain files (`Registry.create_version`)."""

    name: str
    version: str
    run_id: str
    source: str  # where the registry keeps the files (e.g. the run's artifact URI)


def parse_model_uri(uri: str) -> tuple[str, str | None, str | None]:
    """Split an MLflow model URI.

    Args:
        uri: ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``.

    Returns:
        ``(name, alias, version)``; exactly one of alias and version is set.

    Raises:
        UsageError: `uri` has neither form.
    """
    m = _URI.match(uri)
    if not m:
        raise UsageError(f"'{uri}' is not models:/NAME@ALIAS or models:/NAME/VERSION")
    return m["name"], m["alias"], m["version"]


class Registry(Protocol):
    """What the gate needs from a model registry.

    Every method raises the project's errors: `InputError` for a model, version or run that does
    not exist, `InfrastructureError` when the registry cannot be reached, `VerificationError`
    when the registry refuses a write (e.g. the registry-store plugin).
    """

    def get_version(self, name: str, version: str) -> ModelVersion:
        """The version `version` of model `name`."""
        ...

    def get_by_alias(self, name: str, alias: str) -> ModelVersion | None:
        """The version holding `alias`, or None when no version holds it."""
        ...

    def search_versions(self, name: str, *, run_id: str | None = None) -> list[ModelVersion]:
        """The versions of model `name`, newest first (none when the model does not exist).

        Args:
            name: The registered model.
            run_id: Only the versions created from this run (e.g. a pipeline's training run).
        """
        ...

    def download(self, name: str, version: str, dest: str) -> str:
        """Download the version's files under `dest`; return the directory holding them."""
        ...

    def download_links(self, run_id: str, dest: str) -> str:
        """Download the links a training run logged; return their directory."""
        ...

    def download_evidence(self, run_id: str, dest: str) -> str:
        """Download the evidence files (e.g. metrics) a run logged.

        Returns:
            Their directory, laid out by their recorded paths (created empty when the run
            logged none).
        """
        ...

    def create_version(
        self,
        name: str,
        files_dir: str,
        *,
        links_dir: str | None = None,
        evidence: Mapping[str, str] | None = None,
        run_id: str | None = None,
    ) -> Registered:
        """Register the files in `files_dir` as a new version of `name`.

        Args:
            name: The model (created when it does not exist yet).
            files_dir: The directory of model files.
            links_dir: Links stored with the version's run, for `promote`.
            evidence: Recorded path -> local file of other steps' products (metrics) stored
                with the run for the layout's thresholds; paths already checked.
            run_id: An existing run to store everything in instead of a new one.
        """
        ...

    def set_tag(self, name: str, version: str, key: str, value: str) -> None:
        """Set tag `key` on the version (the gate's signed records)."""
        ...

    def set_alias(self, name: str, alias: str, version: str) -> None:
        """Point `alias` at the version."""
        ...

    def delete_alias(self, name: str, alias: str) -> None:
        """Remove `alias` from the model."""
        ...


class RegistryFactory(Protocol):
    """Opens the registry of one URI scheme and reads that scheme's model URIs.

    A `Registry` class with a static `parse_uri` is one (`MlflowRegistry`).
    """

    def __call__(self, location: str | None = None, /) -> Registry:
        """The registry at `location` (a tracking URI, an endpoint), or the configured one."""
        ...

    @staticmethod
    def parse_uri(uri: str) -> ModelRef:
        """Read a model URI of this scheme; raise UsageError when it is malformed."""
        ...


_FACTORIES: dict[str, RegistryFactory | str] = {
    "models": "provenance.gate.mlflow:MlflowRegistry",
}


def register_scheme(scheme: str, factory: RegistryFactory | str) -> None:
    """Make model URIs of `scheme` (``scheme:...``) resolve to the registry `factory` opens.

    Args:
        scheme: The URI scheme, without the colon (``hf``).
        factory: The factory, or ``"package.module:Name"`` to import it when first used.

    Raises:
        UsageError: `scheme` is not a URI scheme.
    """
    if not re.fullmatch(r"[A-Za-z][A-Za-z0-9+.-]*", scheme):
        raise UsageError(f"'{scheme}' is not a URI scheme")
    _FACTORIES[scheme.lower()] = factory


def _load(scheme: str, target: RegistryFactory | str) -> RegistryFactory:
    if not isinstance(target, str):
        return target
    module, _, attr = target.partition(":")
    factory: RegistryFactory = getattr(importlib.import_module(module), attr)
    _FACTORIES[scheme] = factory
    return factory


def registry_factory(uri: str) -> RegistryFactory:
    """The factory registered for the scheme of model URI `uri`.

    Raises:
        UsageError: `uri` has no scheme, or no installed package registers it.
    """
    m = _SCHEME.match(uri)
    scheme = m["scheme"].lower() if m else ""
    if scheme and scheme not in _FACTORIES:
        from importlib.metadata import entry_points

        for ep in entry_points(group=ENTRY_POINT_GROUP, name=scheme):
            _FACTORIES[scheme] = ep.value
            break
    if scheme not in _FACTORIES:
        known = ", ".join(f"{s}:" for s in sorted(_FACTORIES))
        raise UsageError(f"'{uri}' is not a model URI of a known registry ({known})")
    return _load(scheme, _FACTORIES[scheme])


def resolve(
    uri: str, *, location: str | None = None, registry: Registry | None = None
) -> tuple[Registry, ModelRef]:
    """The registry a model URI names, opened at `location`, and the model it names.

    Args:
        uri: A model URI (``models:/NAME@ALIAS``, ``models:/NAME/VERSION``, or another
            registered scheme).
        location: Where the registry is (e.g. the MLflow tracking URI); None for its default.
        registry: Use this registry instead of opening one (the URI is still read by the
            factory of its scheme).

    Raises:
        UsageError: The URI is malformed or its scheme unknown.
    """
    factory = registry_factory(uri)
    ref = factory.parse_uri(uri)
    return (registry if registry is not None else factory(location)), ref


def open_registry(
    registry: Registry | None, location: str | None = None, scheme: str = "models"
) -> Registry:
    """`registry`, or the registry of `scheme` at `location` (MLflow by default)."""
    if registry is not None:
        return registry
    return registry_factory(f"{scheme}:")(location)
