"""Hash every file of a downloaded model version: no excludes, nothing followed."""

from __future__ import annotations

from provenance.errors import VerificationError
from provenance.hashing import Manifest, hash_paths, walk_all


def hash_tree(root: str, source: str) -> Manifest:
    """Manifest of every file under `root`.

    Whatever the registry serves (a planted `__pycache__/` or `.git/` included) must be
    accounted for; a symlink or special file in a download is refused by name.
    """
    files, refused = walk_all(root, ["."])
    if refused:
        path, why = refused[0]
        raise VerificationError(f"{source}: '{path}' {why}")
    return Manifest(dict(zip(files, (d.hex() for d in hash_paths(root, files)), strict=True)))
