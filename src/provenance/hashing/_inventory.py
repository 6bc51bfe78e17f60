"""Every entry under the product directories, for the final check: no excludes, nothing followed.

Recording skips `__pycache__/`, `.git/` and the like; checking must not, or a file planted there
would be served unverified. Symlinks (to anything, inside or outside) and special files (FIFOs,
sockets, devices) are reported by name without being opened, so a FIFO cannot hang verification.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterable

from provenance.errors import ArtifactError
from provenance.hashing._patterns import Pattern


def _kind(mode: int) -> str | None:
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISLNK(mode):
        return "a symlink (products must be regular files)"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return "not a regular file"


def inventory(
    base: str, patterns: Iterable[Pattern], prune: Iterable[str] = ()
) -> tuple[list[str], list[tuple[str, str]]]:
    """(regular files, [(entry, why it is refused)]) under the patterns' directories.

    A pattern with a directory part (`models/*`) claims every entry below that directory; one
    without (`*.json`) claims the entries its regex matches. `prune`: relative directories to
    leave out (the links directory).
    """
    files: set[str] = set()
    refused: dict[str, str] = {}
    pruned = {p.rstrip("/") for p in prune}
    for pat in patterns:
        claims_all = bool(pat.root)
        start = os.path.join(base, pat.root) if pat.root else base
        try:
            st = os.lstat(start)
        except FileNotFoundError:
            continue
        except OSError as exc:
            raise ArtifactError(pat.root or ".", f"cannot inspect: {exc.strerror}") from None
        if not stat.S_ISDIR(st.st_mode):
            why = _kind(st.st_mode)
            if why:
                refused[pat.root] = why
            else:
                files.add(pat.root)
            continue
        stack = [(start, pat.root + "/" if pat.root else "")]
        while stack:
            dirpath, prefix = stack.pop()
            try:
                entries = list(os.scandir(dirpath))
            except OSError as exc:
                raise ArtifactError(prefix or ".", f"cannot list: {exc.strerror}") from None
            for entry in entries:
                rel = prefix + entry.name
                if entry.is_dir(follow_symlinks=False):
                    if rel not in pruned:
                        stack.append((entry.path, rel + "/"))
                    continue
                if not (claims_all or pat.regex.match(rel)):
                    continue
                # d_type answers for regular files without a syscall; others need lstat.
                if entry.is_file(follow_symlinks=False):
                    files.add(rel)
                elif why := _kind(entry.stat(follow_symlinks=False).st_mode):
                    refused[rel] = why
    return sorted(files), sorted(refused.items())
