"""The manifest digest a signed link recorded: the loader's trust anchor.

The link's signature is checked with the step's public key before its payload is parsed; the
manifest's sha256 is then read from the link's materials or products. A link signed by another
key, or one that does not record the manifest, is a refusal (VerificationError).
"""

from __future__ import annotations

import json

from provenance.errors import InputError, VerificationError
from provenance.signing import dsse
from provenance.signing.keys import load_public_key


def recorded_manifest(link: str, public_key: str, manifest: str) -> str:
    """sha256 of `manifest` (its path as recorded) in the link at `link`, signed by the key."""
    key = load_public_key(public_key)
    envelope = dsse.read(link, "link")
    if not envelope.verified_keyids({key.keyid: key}):
        raise VerificationError(
            f"{link}: not signed by {public_key} (keyid {key.keyid[:8]}; signed by "
            f"{', '.join(k[:8] for k in envelope.keyids) or 'nobody'})"
        )
    try:
        doc = json.loads(envelope.payload)
    except ValueError as exc:
        raise InputError(link, f"link payload is not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("_type") != "link":
        raise InputError(link, "not an in-toto link")
    for section in ("materials", "products"):
        entry = doc.get(section, {}).get(manifest) if isinstance(doc.get(section), dict) else None
        if isinstance(entry, dict) and isinstance(entry.get("sha256"), str):
            return str(entry["sha256"])
    raise VerificationError(f"{link}: the step did not record {manifest}")
