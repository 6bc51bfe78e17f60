"""Recognise a provenance file by its content, never by its name.

Accepted: Sigstore bundles v0.1-v0.3 (alone, as lines of an `.intoto.jsonl`, or wrapped as
`{"bundle": ...}`) and key-signed DSSE envelopes. Refused with a reason: bare DSSE envelopes
carrying a Fulcio certificate (their transparency-log proof must be fetched online) and
anything else.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from provenance._fs import load_json_bounded, read_bounded
from provenance.errors import InputError

MAX_BYTES = 64 * 1024 * 1024
BUNDLE_MEDIA_TYPES = tuple(
    f"application/vnd.dev.sigstore.bundle{v}+json"
    for v in (".v0.3", "+json;version=0.3", "+json;version=0.2", "+json;version=0.1")
)


class UnsupportedProvenanceError(InputError):
    """The provenance is in a form this verifier cannot check offline (never a pass)."""


@dataclass(frozen=True)
class Provenance:
    kind: str  # "sigstore-bundle" | "dsse"
    document: dict[str, Any]
    source: str


def _classify(doc: Any, source: str) -> Provenance:
    if (
        isinstance(doc, dict)
        and isinstance(doc.get("bundle"), dict)
        and "mediaType" in doc["bundle"]
    ):
        doc = doc["bundle"]
    if not isinstance(doc, dict):
        raise UnsupportedProvenanceError(source, "not a JSON object")
    media = doc.get("mediaType")
    if isinstance(media, str) and media.startswith("application/vnd.dev.sigstore.bundle"):
        if media not in BUNDLE_MEDIA_TYPES:
            raise UnsupportedProvenanceError(source, f"unsupported Sigstore bundle version {media}")
        return Provenance("sigstore-bundle", doc, source)
    if {"payload", "payloadType", "signatures"} <= doc.keys():
        sigs = doc.get("signatures") or []
        if any(isinstance(s, dict) and s.get("cert") for s in sigs):
            raise UnsupportedProvenanceError(
                source,
                "bare DSSE envelope with an embedded certificate: its transparency-log "
                "entry must be looked up online (Rekor), which offline verification does not do; "
                "regenerate the provenance with slsa-github-generator v2.1.0+ (Sigstore bundle)",
            )
        return Provenance("dsse", doc, source)
    raise UnsupportedProvenanceError(source, "neither a Sigstore bundle nor a DSSE envelope")


def load(path: str) -> list[Provenance]:
    raw = read_bounded(path, MAX_BYTES, "provenance")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InputError(path, "not UTF-8 JSON") from None
    lines = [line for line in text.splitlines() if line.strip()]
    if not lines:
        raise InputError(path, "empty provenance file")
    try:
        docs = [load_json_bounded(text, path, what="provenance")]
    except InputError:
        if len(lines) == 1:
            raise
        # JSON lines: one provenance document per line
        docs = [
            load_json_bounded(line, f"{path} (line {i + 1})", what="provenance")
            for i, line in enumerate(lines)
        ]
    if not docs:
        raise InputError(path, "empty provenance file")
    return [
        _classify(d, f"{path}" + (f" (line {i + 1})" if len(docs) > 1 else ""))
        for i, d in enumerate(docs)
    ]
