"""The manifest digest a signed link recorded: the loader's trust anchor.

The link's signature is checked with the step's public key before its payload is parsed; the
payload must be an in-toto link (DSSE payload type and `_type`) of the step and key its file is
named after (`<step>.<keyid[:8]>.link`, as in-toto names and checks links), so another step's
link signed by the same key cannot stand in for it. The manifest's sha256 is then read from the
link's products (the dataset the step made), else its materials (the dataset it read).
Anything else is a refusal: VerificationError for a link that is not the one asked for,
InputError for one that is not well formed.
"""

from __future__ import annotations

import json
import os
import re

from provenance.errors import InputError, VerificationError
from provenance.signing import dsse
from provenance.signing.keys import load_public_key

# The name in-toto gives a link file (provenance.links.FILE_RE; datasets sits below links).
_LINK_FILE = re.compile(r"(?P<step>[A-Za-z0-9_.-]{1,128})\.(?P<keyid>[0-9a-f]{8})\.link\Z")
_SHA256 = re.compile(r"[0-9a-f]{64}\Z")


def recorded_manifest(link: str, public_key: str, manifest: str) -> str:
    """sha256 of `manifest` (its path as recorded) in the link at `link`, signed by the key."""
    key = load_public_key(public_key)
    envelope = dsse.read(link, "link")
    if not envelope.verified_keyids({key.keyid: key}):
        raise VerificationError(
            f"{link}: not signed by {public_key} (keyid {key.keyid[:8]}; signed by "
            f"{', '.join(k[:8] for k in envelope.keyids) or 'nobody'})"
        )
    if envelope.payload_type != dsse.IN_TOTO_PAYLOAD_TYPE:
        raise InputError(link, f"payload type {envelope.payload_type!r} is not in-toto")
    try:
        doc = json.loads(envelope.payload)
    except ValueError as exc:
        raise InputError(link, f"link payload is not JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("_type") != "link":
        raise InputError(link, "not an in-toto link")
    step = doc.get("name")
    named = _LINK_FILE.match(os.path.basename(link))
    if named is None:
        raise VerificationError(
            f"{link}: not named <step>.<keyid[:8]>.link, so it does not say which step it is"
        )
    if step != named["step"] or named["keyid"] != key.keyid[:8]:
        raise VerificationError(
            f"{link}: the file is named for step '{named['step']}' signed by {named['keyid']}, "
            f"but records step {step!r} signed by {key.keyid[:8]}; no manifest digest is "
            "taken from it"
        )
    for section in ("products", "materials"):
        artifacts = doc.get(section)
        entry = artifacts.get(manifest) if isinstance(artifacts, dict) else None
        if isinstance(entry, dict) and "sha256" in entry:
            digest = entry["sha256"]
            if not isinstance(digest, str) or not _SHA256.match(digest):
                raise InputError(link, f"the sha256 recorded for {manifest} is malformed")
            return digest
    raise VerificationError(f"{link}: the step did not record {manifest}")
