"""SLSA Provenance v1 and v0.2 as typed predicates, read strictly.

https://slsa.dev/spec/v1.0/provenance and https://slsa.dev/provenance/v0.2. `provenance slsa
attest` builds its statements as `SlsaProvenance` (`attest/slsa/build.py`) and `slsa verify`
reads every SLSA statement through these classes, so no unknown or mistyped field is trusted.
The free-form parts of the schema (`externalParameters`, `internalParameters`, v0.2
`parameters`/`environment`/`buildConfig`) are kept as JSON: their meaning belongs to the
`buildType`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from provenance.attest._fields import Fields, digest_set
from provenance.attest._resource import ResourceDescriptor
from provenance.attest.statement import Predicate, register

PREDICATE_TYPE = "https://slsa.dev/provenance/v1"


def _descriptors(f: Fields, name: str, source: str | None) -> tuple[ResourceDescriptor, ...]:
    return tuple(
        ResourceDescriptor.from_dict(d, f"{f.where}.{name}[{i}]", source)
        for i, d in enumerate(f.array(name, required=False))
    )


@register
@dataclass(frozen=True)
class SlsaProvenance(Predicate):
    """buildDefinition + runDetails of SLSA Provenance v1."""

    predicate_type = PREDICATE_TYPE

    build_type: str
    builder_id: str
    external_parameters: Mapping[str, Any] = field(default_factory=dict)
    internal_parameters: Mapping[str, Any] = field(default_factory=dict)
    resolved_dependencies: tuple[ResourceDescriptor, ...] = ()
    builder_version: Mapping[str, str] = field(default_factory=dict)
    builder_dependencies: tuple[ResourceDescriptor, ...] = ()
    invocation_id: str = ""
    started_on: str = ""
    finished_on: str = ""
    byproducts: tuple[ResourceDescriptor, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The predicate as SLSA Provenance v1 JSON (empty optional parts left out)."""
        build: dict[str, Any] = {
            "buildType": self.build_type,
            "externalParameters": dict(self.external_parameters),
        }
        if self.internal_parameters:
            build["internalParameters"] = dict(self.internal_parameters)
        if self.resolved_dependencies:
            build["resolvedDependencies"] = [d.to_dict() for d in self.resolved_dependencies]
        builder: dict[str, Any] = {"id": self.builder_id}
        if self.builder_version:
            builder["version"] = dict(self.builder_version)
        if self.builder_dependencies:
            builder["builderDependencies"] = [d.to_dict() for d in self.builder_dependencies]
        run: dict[str, Any] = {"builder": builder}
        metadata = {
            k: v
            for k, v in (
                ("invocationId", self.invocation_id),
                ("startedOn", self.started_on),
                ("finishedOn", self.finished_on),
            )
            if v
        }
        if metadata:
            run["metadata"] = metadata
        if self.byproducts:
            run["byproducts"] = [d.to_dict() for d in self.byproducts]
        return {"buildDefinition": build, "runDetails": run}

    @classmethod
    def from_dict(cls, doc: Any, source: str | None) -> SlsaProvenance:
        """Read SLSA Provenance v1 strictly (InputError naming `source` on any bad field)."""
        f = Fields(doc, "predicate", source)
        b = Fields(f.obj("buildDefinition"), "predicate.buildDefinition", source)
        build_type = b.req_text("buildType")
        external = b.obj("externalParameters")
        internal = b.obj("internalParameters", required=False) or {}
        resolved = _descriptors(b, "resolvedDependencies", source)
        b.done()
        r = Fields(f.obj("runDetails"), "predicate.runDetails", source)
        bl = Fields(r.obj("builder"), "predicate.runDetails.builder", source)
        builder_id = bl.req_text("id")
        version = bl.obj("version", required=False) or {}
        if not all(isinstance(v, str) for v in version.values()):
            raise bl.error("version", "must map component names to version strings")
        builder_deps = _descriptors(bl, "builderDependencies", source)
        bl.done()
        meta = r.obj("metadata", required=False)
        invocation = started = finished = ""
        if meta is not None:
            m = Fields(meta, "predicate.runDetails.metadata", source)
            invocation = m.text("invocationId", required=False, empty=True) or ""
            started = m.text("startedOn", required=False) or ""
            finished = m.text("finishedOn", required=False) or ""
            m.done()
        byproducts = _descriptors(r, "byproducts", source)
        r.done()
        f.done()
        return cls(
            build_type,
            builder_id,
            external,
            internal,
            resolved,
            version,
            builder_deps,
            invocation,
            started,
            finished,
            byproducts,
        )


PREDICATE_TYPE_V02 = "https://slsa.dev/provenance/v0.2"


@dataclass(frozen=True)
class ConfigSource:
    """v0.2 `invocation.configSource`: where the build's top-level recipe came from."""

    uri: str = ""
    digest: Mapping[str, str] = field(default_factory=dict)
    entry_point: str = ""

    def to_dict(self) -> dict[str, Any]:
        """The configSource as v0.2 JSON."""
        doc: dict[str, Any] = {}
        if self.uri:
            doc["uri"] = self.uri
        if self.digest:
            doc["digest"] = dict(self.digest)
        if self.entry_point:
            doc["entryPoint"] = self.entry_point
        return doc


@dataclass(frozen=True)
class Material:
    """v0.2 `materials[]`: a URI and, when known, its digests."""

    uri: str = ""
    digest: Mapping[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """The material as v0.2 JSON."""
        doc: dict[str, Any] = {"uri": self.uri} if self.uri else {}
        if self.digest:
            doc["digest"] = dict(self.digest)
        return doc


_COMPLETENESS = ("parameters", "environment", "materials")


@register
@dataclass(frozen=True)
class SlsaProvenanceV02(Predicate):
    """SLSA Provenance v0.2 (https://slsa.dev/provenance/v0.2), read strictly.

    Field names as the spec and in-toto-golang (whose `buildInvocationID` slsa-github-generator
    writes) spell them; `parameters`, `environment` and `buildConfig` are free-form by the
    spec and kept as JSON. Read for verification only: this project writes v1.
    """

    predicate_type = PREDICATE_TYPE_V02

    builder_id: str
    build_type: str
    config_source: ConfigSource = field(default_factory=ConfigSource)
    parameters: Any = None
    environment: Any = None
    build_config: Any = None
    invocation_id: str = ""
    started_on: str = ""
    finished_on: str = ""
    completeness: Mapping[str, bool] = field(default_factory=dict)
    reproducible: bool = False
    materials: tuple[Material, ...] = ()

    def to_dict(self) -> dict[str, Any]:
        """The predicate as SLSA Provenance v0.2 JSON."""
        invocation: dict[str, Any] = {}
        if self.config_source.to_dict():
            invocation["configSource"] = self.config_source.to_dict()
        for key, value in (("parameters", self.parameters), ("environment", self.environment)):
            if value is not None:
                invocation[key] = value
        doc: dict[str, Any] = {"builder": {"id": self.builder_id}, "buildType": self.build_type}
        if invocation:
            doc["invocation"] = invocation
        if self.build_config is not None:
            doc["buildConfig"] = self.build_config
        metadata: dict[str, Any] = {
            k: v
            for k, v in (
                ("buildInvocationId", self.invocation_id),
                ("buildStartedOn", self.started_on),
                ("buildFinishedOn", self.finished_on),
            )
            if v
        }
        if self.completeness:
            metadata["completeness"] = dict(self.completeness)
        if self.reproducible:
            metadata["reproducible"] = True
        if metadata:
            doc["metadata"] = metadata
        if self.materials:
            doc["materials"] = [m.to_dict() for m in self.materials]
        return doc

    @classmethod
    def from_dict(cls, doc: Any, source: str | None) -> SlsaProvenanceV02:
        """Read SLSA Provenance v0.2 strictly (InputError naming `source` on any bad field)."""
        f = Fields(doc, "predicate", source)
        bl = Fields(f.obj("builder"), "predicate.builder", source)
        builder_id = bl.req_text("id")
        bl.done()
        build_type = f.req_text("buildType")
        config, parameters, environment = ConfigSource(), None, None
        inv = f.obj("invocation", required=False)
        if inv is not None:
            i = Fields(inv, "predicate.invocation", source)
            cs = i.obj("configSource", required=False)
            if cs is not None:
                c = Fields(cs, "predicate.invocation.configSource", source)
                digest = c.obj("digest", required=False)
                config = ConfigSource(
                    c.text("uri", required=False) or "",
                    digest_set(digest, c.where, source) if digest else {},
                    c.text("entryPoint", required=False, empty=True) or "",
                )
                c.done()
            parameters = i.get("parameters", required=False)
            environment = i.get("environment", required=False)
            i.done()
        build_config = f.get("buildConfig", required=False)
        invocation_id = started = finished = ""
        completeness: dict[str, bool] = {}
        reproducible = False
        meta = f.obj("metadata", required=False)
        if meta is not None:
            m = Fields(meta, "predicate.metadata", source)
            ids = [
                m.text(k, required=False, empty=True)
                for k in ("buildInvocationId", "buildInvocationID")
            ]
            given = [x for x in ids if x is not None]
            if len(given) > 1:
                raise m.error(
                    "buildInvocationId", "given twice (buildInvocationId and buildInvocationID)"
                )
            invocation_id = given[0] if given else ""
            started = m.text("buildStartedOn", required=False) or ""
            finished = m.text("buildFinishedOn", required=False) or ""
            comp = m.obj("completeness", required=False)
            if comp is not None:
                cf = Fields(comp, "predicate.metadata.completeness", source)
                for key in _COMPLETENESS:
                    value = cf.get(key, required=False)
                    if value is not None and not isinstance(value, bool):
                        raise cf.error(key, "must be a boolean")
                    if value is not None:
                        completeness[key] = value
                cf.done()
            rep = m.get("reproducible", required=False)
            if rep is not None and not isinstance(rep, bool):
                raise m.error("reproducible", "must be a boolean")
            reproducible = bool(rep)
            m.done()
        materials = []
        for n, raw in enumerate(f.array("materials", required=False)):
            mf = Fields(raw, f"predicate.materials[{n}]", source)
            digest = mf.obj("digest", required=False)
            materials.append(
                Material(
                    mf.text("uri", required=False) or "",
                    digest_set(digest, mf.where, source) if digest else {},
                )
            )
            mf.done()
        f.done()
        return cls(
            builder_id,
            build_type,
            config,
            parameters,
            environment,
            build_config,
            invocation_id,
            started,
            finished,
            completeness,
            reproducible,
            tuple(materials),
        )
