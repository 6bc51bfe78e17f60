"""The link model: build a link payload and parse one back, validated field by field.

Parsing is only ever reached through `provenance.links.read_link`, after the envelope's signature
verified. The payload is serialised once, which keeps 100k-artifact links fast (in-toto's own
recorder re-canonicalises the whole link several times).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from provenance._fs import canonical_json, load_json_bounded
from provenance.errors import LinkFormatError
from provenance.links._artifacts import ArtifactMap
from provenance.links._sections import Buffer, fast_parse, plain, sha256_map


class JsonWriter(Protocol):
    """Artifacts that append their own canonical JSON (`hashing.ArtifactSet`)."""

    def write_json(self, out: bytearray) -> None:
        """Append the artifacts' canonical JSON object to `out`."""

    def take_json(self) -> bytearray | None:
        """Their canonical JSON object in a buffer of their own, handed over; or None."""


# Pre-encoded forms: a million artifacts then never exist as a dict of dicts.
Artifacts = Mapping[str, Mapping[str, str]] | bytes | bytearray | JsonWriter


def link_payload(
    name: str,
    command: list[str],
    materials: Artifacts,
    products: Artifacts,
    byproducts: dict[str, Any],
    environment: dict[str, Any],
) -> bytearray:
    """The canonical JSON of a link, byte for byte `canonical_json` of the whole link dict.

    Assembled in one buffer with the keys in their canonical (sorted) order, so artifacts that
    write their own JSON are never held twice. Materials that hand over their JSON already
    rendered (`take_json`: hashed with `render_json`) become that buffer: what precedes them
    is put in front in place.

    Args:
        name: the step name.
        command: the command (or `module:function`) the step ran.
        materials: path -> digests, or their canonical JSON already encoded.
        products: likewise.
        byproducts: in-toto byproducts (stdout, stderr, return value).
        environment: run id, git commit, Python, platform, ... (DESIGN: contracts).

    Returns:
        The payload to sign (a bytearray, so signing can prefix the PAE header in place).
    """
    out = bytearray(b'{"_type":"link","byproducts":')
    out += canonical_json(byproducts)
    out += b',"command":'
    out += canonical_json(command)
    out += b',"environment":'
    out += canonical_json(environment)
    out += b',"materials":'
    own = None if isinstance(materials, bytes | bytearray | Mapping) else materials.take_json()
    if own is None:
        _write_artifacts(out, materials)
    else:
        own[0:0] = out  # a million materials' JSON is ~100 MB: moved, not copied
        out = own
    out += b',"name":'
    out += canonical_json(name)
    out += b',"products":'
    _write_artifacts(out, products)
    out += b"}"
    return out


def _write_artifacts(out: bytearray, artifacts: Artifacts) -> None:
    if isinstance(artifacts, bytes | bytearray):
        out += artifacts
    elif isinstance(artifacts, Mapping):
        out += canonical_json(artifacts)
    else:
        artifacts.write_json(out)


_HEX64 = re.compile(r"^[0-9a-f]{64}\Z")


@dataclass(frozen=True)
class LinkData:
    """The parts of an in-toto link that verification reads (in-toto's rule functions included)."""

    name: str
    command: list[str]
    materials: Mapping[str, Mapping[str, str]]  # an ArtifactMap for a plain section
    products: Mapping[str, Mapping[str, str]]
    byproducts: dict[str, Any]
    environment: dict[str, Any]

    @property
    def run_id(self) -> str | None:
        """The pipeline run id the link records (`environment.pipeline_run_id`), or None."""
        value = self.environment.get("pipeline_run_id")
        return value if isinstance(value, str) and value else None

    def patterns(self, kind: str) -> list[str]:
        """The artifact patterns the step recorded for `kind` ("materials" or "products").

        Args:
            kind: which side of the step.

        Returns:
            The recorded patterns (strings only); empty when the link names none.
        """
        pats = self.environment.get("patterns", {})
        value = pats.get(kind, []) if isinstance(pats, dict) else []
        return [p for p in value if isinstance(p, str)] if isinstance(value, list) else []


def _artifacts(value: Any, what: str, path: str) -> Mapping[str, Mapping[str, str]]:
    if not isinstance(value, dict):
        raise LinkFormatError(path, f"{what} must be an object")
    if plain(value):
        return ArtifactMap(sha256_map(value))
    # Anything else is checked entry by entry.
    hex64 = _HEX64.match
    for name, digests in value.items():
        if not isinstance(digests, dict) or not digests:
            raise LinkFormatError(path, f"{what} entry '{name}' has no digests")
        for hexd in digests.values():
            if not isinstance(hexd, str):
                raise LinkFormatError(path, f"{what} entry '{name}' has a malformed digest")
        # sha256 is the interop digest the real-file check compares: a link without it for any
        # artifact could hide a swapped file, so it is refused.
        sha = digests.get("sha256")
        if sha is None:
            raise LinkFormatError(path, f"{what} entry '{name}' has no sha256 digest")
        if not hex64(sha):
            raise LinkFormatError(path, f"{what} entry '{name}' has a malformed sha256")
    return value


def parse_link(payload: Buffer, path: str, sections: dict[bytes, Any] | None = None) -> LinkData:
    """Validate a link payload whose signature was already checked; errors name `path`.

    Args:
        payload: the signed payload bytes.
        path: the link file, named in errors.
        sections: the artifact-section cache of one verification (see `links._sections`); a
            caller verifying several links passes one (initially empty) dict to all of them
            and never changes it.

    Returns:
        The link, its plain artifact sections as `ArtifactMap`s.

    Raises:
        LinkFormatError: the payload is not a well-formed in-toto link.
    """
    data = fast_parse(payload, path, {} if sections is None else sections)
    checked = data is not None  # its artifact sections are known to be plain
    if data is None:
        # Bounded: absurd numbers, NaN, duplicate keys and deep nesting are refused.
        data = load_json_bounded(bytes(payload), path, what="link payload", error=LinkFormatError)
    if not isinstance(data, dict) or data.get("_type") != "link":
        raise LinkFormatError(path, "payload is not an in-toto link (_type must be 'link')")
    name, command = data.get("name"), data.get("command", [])
    if not isinstance(name, str) or not name:
        raise LinkFormatError(path, "link has no name")
    if not isinstance(command, list) or not all(isinstance(c, str) for c in command):
        raise LinkFormatError(path, "link command must be a list of strings")
    byproducts, environment = data.get("byproducts", {}), data.get("environment", {})
    if not isinstance(byproducts, dict) or not isinstance(environment, dict):
        raise LinkFormatError(path, "link byproducts and environment must be objects")
    return LinkData(
        name,
        command,
        data["materials"] if checked else _artifacts(data.get("materials", {}), "materials", path),
        data["products"] if checked else _artifacts(data.get("products", {}), "products", path),
        byproducts,
        environment,
    )
