"""SLSA Provenance v1 as a typed predicate, read strictly (https://slsa.dev/spec/v1.0/provenance).

`provenance slsa attest` still builds its statement in `provenance.slsa`; this class is how the
attestation layer reads it (and any other SLSA v1 provenance) without trusting unknown fields.
The free-form parts of the schema, `externalParameters` and `internalParameters`, are kept as
JSON objects: their meaning belongs to the `buildType`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from provenance.attest._fields import Fields
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
