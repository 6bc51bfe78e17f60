"""Find the files that include patterns select, with `os.scandir`, pruning excluded directories.

Symlinks are followed only when their target stays inside the base directory; a link that points
outside is an error naming it (recording it would hash data the base does not contain). Links to
directories are not descended into, which also rules out cycles.
"""

from __future__ import annotations

import logging
import os
import stat
from collections.abc import Iterable

from provenance.errors import ArtifactError, PathEscapeError
from provenance.hashing._patterns import Excludes, Pattern

log = logging.getLogger(__name__)


def _inside(real: str, base_real: str) -> bool:
    return real == base_real or real.startswith(base_real.rstrip(os.sep) + os.sep)


def _check_link(full: str, rel: str, base_real: str) -> bool:
    """True when the symlink at `full` is a file inside base; raise if it points outside."""
    target = os.path.realpath(full)
    if not _inside(target, base_real):
        raise PathEscapeError(rel, f"symlink points outside the base directory (to {target})")
    try:
        return stat.S_ISREG(os.stat(target).st_mode)
    except OSError as exc:
        raise ArtifactError(rel, f"broken symlink: {exc.strerror}") from exc


def collect(base: str, patterns: Iterable[Pattern], excludes: Excludes) -> list[str]:
    """Relative POSIX paths of the regular files under `base` matched by any pattern, sorted."""
    base_real = os.path.realpath(base)
    found: set[str] = set()
    roots: dict[str, list[Pattern]] = {}
    for pat in patterns:
        roots.setdefault(pat.root, []).append(pat)
    for root, pats in roots.items():
        before = len(found)
        _walk_root(base_real, root, pats, excludes, found)
        if len(found) == before:
            log.debug("patterns %s matched nothing", ", ".join(p.text for p in pats))
    return sorted(found)


def _walk_root(
    base_real: str, root: str, pats: list[Pattern], excludes: Excludes, found: set[str]
) -> None:
    start = os.path.join(base_real, root) if root else base_real
    if root:
        if not _inside(os.path.realpath(start), base_real):
            raise PathEscapeError(root, "directory reaches outside the base directory")
        try:
            st = os.lstat(start)
        except FileNotFoundError:
            return
        if not stat.S_ISDIR(st.st_mode):
            # A pattern naming one file directly.
            name = root.rsplit("/", 1)[-1]
            if excludes.file_excluded(root, name):
                return
            if stat.S_ISLNK(st.st_mode) and not _check_link(start, root, base_real):
                return
            if stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
                found.add(root)
            return
    match_all = any(p.whole_root for p in pats)
    prefix = root + "/" if root else ""
    stack = [(start, prefix)]
    while stack:
        dirpath, relprefix = stack.pop()
        try:
            it = os.scandir(dirpath)
        except OSError as exc:
            raise ArtifactError(
                relprefix.rstrip("/") or ".", f"cannot list: {exc.strerror}"
            ) from exc
        with it:
            for entry in it:
                rel = relprefix + entry.name
                if entry.is_dir(follow_symlinks=False):
                    if not excludes.dir_excluded(rel, entry.name):
                        stack.append((entry.path, rel + "/"))
                    continue
                if excludes.file_excluded(rel, entry.name):
                    continue
                if not (match_all or any(p.regex.match(rel) for p in pats)):
                    continue
                if entry.is_symlink():
                    if not _check_link(entry.path, rel, base_real):
                        continue
                elif not entry.is_file(follow_symlinks=False):
                    continue  # sockets, fifos, devices are not artifacts
                found.add(rel)
