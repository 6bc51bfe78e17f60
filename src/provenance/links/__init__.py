"""The link model: write, name and read in-toto links (signature checked before parsing).

Every part of ml-provenance that needs a link (record, verification, slsa, gate) goes through
this package; nothing else opens a link file.
"""

from provenance.links._artifacts import ArtifactMap, membership, shas_of
from provenance.links._files import (
    FILE_RE,
    Rejected,
    VerifiedLink,
    claimed_run_id,
    link_filename,
    list_links,
    read_envelope,
    read_link,
    step_links,
    write_link,
)
from provenance.links._model import LinkData, link_payload
from provenance.links._reader import KEEP_ENVELOPE_BYTES, LinkReader

__all__ = [
    "ArtifactMap",
    "FILE_RE",
    "KEEP_ENVELOPE_BYTES",
    "LinkData",
    "LinkReader",
    "Rejected",
    "VerifiedLink",
    "claimed_run_id",
    "link_filename",
    "link_payload",
    "list_links",
    "membership",
    "read_envelope",
    "read_link",
    "shas_of",
    "step_links",
    "write_link",
]
