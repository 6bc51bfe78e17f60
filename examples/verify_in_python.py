"""Verify a pipeline run from Python and act on the structured result.

    python examples/verify_in_python.py root.layout keys/owner.pub [.provenance/links]

Exits 0 when the run verifies, 1 otherwise, printing the failures as JSON.
"""

from __future__ import annotations

import json
import sys

import provenance
from provenance.signing import load_public_key


def main(argv: list[str]) -> int:
    layout, owner_key, *rest = argv
    links = rest[0] if rest else ".provenance/links"
    result = provenance.verify(layout, [load_public_key(owner_key)], links, ".")
    print(result.verdict)
    if not result.ok:
        print(json.dumps(result.to_dict()["failures"], indent=2))
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
