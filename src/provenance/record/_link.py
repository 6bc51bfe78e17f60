"""Build, sign and atomically write an in-toto link in a DSSE envelope.

The payload is serialised once and signed once, which keeps 100k-artifact links fast (in-toto's
own recorder re-canonicalises the whole link several times).
"""

from __future__ import annotations

import json
import os
from typing import Any

from provenance.signing import dsse
from provenance.signing._atomic import write_atomic

FILENAME = "{step}.{keyid:.8}.link"


def link_payload(
    name: str,
    command: list[str],
    materials: dict[str, dict[str, str]],
    products: dict[str, dict[str, str]],
    byproducts: dict[str, Any],
    environment: dict[str, Any],
) -> bytes:
    link = {
        "_type": "link",
        "name": name,
        "command": command,
        "materials": materials,
        "products": products,
        "byproducts": byproducts,
        "environment": environment,
    }
    return json.dumps(link, sort_keys=True, separators=(",", ":")).encode()


def write_link(payload: bytes, signer: Any, step: str, links_dir: str) -> str:
    """Sign `payload` and write `<step>.<keyid[:8]>.link` atomically; return its path."""
    envelope = dsse.sign(payload, signer)
    path = os.path.join(links_dir, FILENAME.format(step=step, keyid=signer.public_key.keyid))
    write_atomic(path, dsse.dumps(envelope))
    return path
