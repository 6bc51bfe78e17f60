"""The in-toto ResourceDescriptor (v1), read strictly: a name/URI plus digests of an artifact."""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from provenance.attest._fields import Fields, digest_set
from provenance.errors import InputError


@dataclass(frozen=True)
class ResourceDescriptor:
    """One artifact reference; at least one of name, uri or digest must be set."""

    uri: str = ""
    digest: Mapping[str, str] = field(default_factory=dict)
    name: str = ""
    download_location: str = ""
    media_type: str = ""
    annotations: Mapping[str, Any] = field(default_factory=dict)
    content: str = ""  # base64, as in the JSON form

    def __post_init__(self) -> None:
        if not (self.uri or self.name or self.digest or self.content):
            raise InputError(None, "a resource descriptor needs a uri, a name or a digest")
        if self.digest:
            object.__setattr__(self, "digest", digest_set(self.digest, self.uri or self.name, None))

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {}
        for key, value in (
            ("name", self.name),
            ("uri", self.uri),
            ("digest", dict(self.digest)),
            ("downloadLocation", self.download_location),
            ("mediaType", self.media_type),
            ("annotations", dict(self.annotations)),
            ("content", self.content),
        ):
            if value:
                doc[key] = value
        return doc

    @classmethod
    def from_dict(cls, doc: Any, where: str, source: str | None) -> ResourceDescriptor:
        f = Fields(doc, where, source)
        name = f.text("name", required=False, empty=True) or ""
        uri = f.text("uri", required=False, empty=True) or ""
        raw_digest = f.obj("digest", required=False)
        digest = digest_set(raw_digest, where, source) if raw_digest is not None else {}
        download = f.text("downloadLocation", required=False, empty=True) or ""
        media = f.text("mediaType", required=False, empty=True) or ""
        annotations = f.obj("annotations", required=False) or {}
        content = f.text("content", required=False, empty=True) or ""
        if content:
            try:
                base64.b64decode(content, validate=True)
            except (binascii.Error, ValueError):
                raise f.error("content", "is not base64") from None
        f.done()
        try:
            return cls(uri, digest, name, download, media, annotations, content)
        except InputError as exc:
            raise InputError(source, f"{where}: {exc}") from None
