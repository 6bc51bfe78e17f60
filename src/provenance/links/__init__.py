"""The link model: write, name and read in-toto links (signature checked before parsing).

Every part of ml-provenance that needs a link (record, verification, slsa, gate) goes through
this package; nothing else opens a link file. Links kept in an object store are written and
gathered here too (`put_object_link`, `gather_object_links`).
"""

from provenance.links._artifacts import ArtifactMap, membership, shas_of
from provenance.links._files import (
    FILE_RE,
    RUN_ID_FILE,
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
from provenance.links._store import gather_object_links, put_object_link, run_name

__all__ = [
    "ArtifactMap",
    "FILE_RE",
    "KEEP_ENVELOPE_BYTES",
    "LinkData",
    "LinkReader",
    "RUN_ID_FILE",
    "Rejected",
    "VerifiedLink",
    "claimed_run_id",
    "gather_object_links",
    "link_filename",
    "link_payload",
    "list_links",
    "membership",
    "put_object_link",
    "read_envelope",
    "read_link",
    "run_name",
    "shas_of",
    "step_links",
    "write_link",
]
