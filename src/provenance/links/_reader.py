"""Reading the links of one verification: large ones in pieces, shared sections parsed once.

A million-artifact link file is ~150 MB of base64 around ~115 MB of payload, and a pipeline has
several. Files up to KEEP_ENVELOPE_BYTES are read whole and their bytes kept by the verified
link (attestations refer to them); larger ones are read a piece at a time
(`signing.dsse.read_large`: the payload decoded straight into the buffer the signature is
checked over) and only their sha256, taken from those very bytes, is kept. The artifact
sections of all links read by one `LinkReader` share one cache (`links._sections`).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from provenance.links._files import Rejected, VerifiedLink, read_envelope, read_link
from provenance.signing import dsse

if TYPE_CHECKING:
    from securesystemslib.signer import Key

# Larger link files are read in pieces and not kept by the verified link (their digest is).
KEEP_ENVELOPE_BYTES = 64 << 20


class LinkReader:
    """Reads and verifies the links of one verification (one reader per verification).

    Example:
        reader = LinkReader()
        for path in step_links(links_dir, "train"):
            got = reader.read(path, allowed, known=all_layout_keys)
    """

    def __init__(self) -> None:
        """A reader with an empty artifact-section cache."""
        self._sections: dict[bytes, Any] = {}  # artifact sections shared by links, parsed once

    def read(
        self, path: str, keys: Mapping[str, Key], *, known: Mapping[str, Key] | None = None
    ) -> VerifiedLink | Rejected:
        """Read `path` and accept it only if one of `keys` signed it (see `read_link`).

        Args:
            path: the link file.
            keys: keyid -> Key of the functionaries allowed to sign it.
            known: every key the caller knows (e.g. all the layout's keys): for a rejected link
                whose signatures claim none of `keys`, `Rejected.signed_by` then names those of
                `known` whose signature verifies (a real functionary of another step).

        Returns:
            The verified link (its bytes kept up to KEEP_ENVELOPE_BYTES, else their sha256), or
            why it was rejected.

        Raises:
            InputError: the file is unreadable, too large or not a DSSE envelope.
            LinkFormatError: a validly signed payload is not a well-formed in-toto link.
        """
        raw, env, digest = _open(path)
        got = read_link(path, keys, data=raw, envelope=env, sections=self._sections, digest=digest)
        if isinstance(got, Rejected) and known and not any(k in keys for k in env.keyids):
            return Rejected(
                got.file, got.reason, got.keyids, tuple(env.verified_keyids(dict(known)))
            )
        return got


def _open(path: str) -> tuple[bytes | None, dsse.ParsedEnvelope, str | None]:
    """A link file's bytes (None when too large to keep), envelope and digest (when not kept)."""
    try:
        large = os.stat(path).st_size > KEEP_ENVELOPE_BYTES
    except OSError:
        large = False  # the ordinary read names the problem
    streamed = dsse.read_large(path, "link") if large else None
    if streamed is not None:  # read in pieces
        return None, *streamed
    raw, env = read_envelope(path)
    if len(raw) > KEEP_ENVELOPE_BYTES:  # only its digest is kept, taken now
        return None, env, hashlib.sha256(raw).hexdigest()
    return raw, env, None
