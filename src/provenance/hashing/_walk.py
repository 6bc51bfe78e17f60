"""Find the files that include patterns select, with `os.scandir`, pruning excluded directories.

Symlinks are followed only when their target stays inside the base directory; a link that points
outside is an error naming it (recording it would hash data the base does not contain). Links to
directories are not descended into, which also rules out cycles.

A FIFO, socket or device that a pattern selects is an error naming it: it is never opened (a FIFO
would block the step forever) and never silently left out. A file name that is not valid UTF-8 is
refused by name too: links are JSON text, which cannot carry it faithfully (a lone surrogate
escape is read differently, or refused, by other in-toto implementations), so two different
names could be recorded as one. The file type comes from the directory entry (d_type); only the
error path costs an extra stat.
"""

from __future__ import annotations

import logging
import operator
import os
import stat
from collections.abc import Callable, Iterable, Iterator
from typing import NamedTuple

from provenance.errors import ArtifactError, PathEscapeError
from provenance.hashing._paths import check_relative
from provenance.hashing._patterns import Excludes, Pattern

log = logging.getLogger(__name__)


def _inside(real: str, base_real: str) -> bool:
    return real == base_real or real.startswith(base_real.rstrip(os.sep) + os.sep)


def printable(rel: str) -> str:
    r"""`rel` for a one-line message: undecodable bytes as \\xNN, control characters escaped."""
    text = rel.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def name_problem(rel: str) -> str | None:
    """Why the relative path `rel` cannot be an artifact's name, or None.

    Not valid UTF-8 (os.scandir hands it over surrogate-escaped), or a name verification
    refuses (`_paths.is_safe_relative`) because it means another path on Windows: a backslash,
    or a start like a drive ('c:'). Recording it would write a link that can never verify.
    """
    if not rel.isascii():
        try:
            rel.encode("utf-8")
        except UnicodeEncodeError:
            return "file name is not valid UTF-8"
    if "\\" in rel:
        return "file name has a backslash (a path separator on Windows, refused by verification)"
    if rel[1:2] == ":":
        return "path starts like a Windows drive ('c:'), refused by verification"
    return None


def check_name(rel: str) -> None:
    """Refuse a path that cannot be an artifact's name (`name_problem`), naming it."""
    problem = name_problem(rel)
    if problem is not None:
        raise ArtifactError(printable(rel), f"{problem}; rename it to record it")


def special_kind(mode: int) -> str | None:
    """'a FIFO' / 'a socket' / 'a device' for special files, None for anything else."""
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    if stat.S_ISSOCK(mode):
        return "a socket"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    return None


def _refuse_special(rel: str, mode: int, via: str = "") -> None:
    kind = special_kind(mode)
    if kind:
        raise ArtifactError(
            printable(rel), f"{via}is {kind}, not a regular file; it cannot be an artifact"
        )


def _check_link(full: str, rel: str, base_real: str, refuse_dirs: bool = False) -> bool:
    """True when the symlink at `full` is a file inside base; raise if it points outside.

    A symlink to a directory inside base is not followed (in-toto's default): it is skipped,
    or refused by name with `refuse_dirs` (a dataset, whose every path must be a member).
    """
    target = os.path.realpath(full)
    if not _inside(target, base_real):
        raise PathEscapeError(
            printable(rel), f"symlink points outside the base directory (to {printable(target)})"
        )
    try:
        mode = os.stat(target).st_mode
    except OSError as exc:
        raise ArtifactError(printable(rel), f"broken symlink: {exc.strerror}") from exc
    _refuse_special(rel, mode, "symlink target ")
    if refuse_dirs and stat.S_ISDIR(mode):
        raise ArtifactError(
            printable(rel),
            "is a symlink to a directory; it is not followed (name the directory it points to)",
        )
    return stat.S_ISREG(mode)


def collect(base: str, patterns: Iterable[Pattern], excludes: Excludes) -> list[str]:
    """Relative POSIX paths of the regular files under `base` matched by any pattern, sorted."""
    return sorted(iter_collect(base, patterns, excludes))


def iter_collect(
    base: str, patterns: Iterable[Pattern], excludes: Excludes, *, refuse_dir_links: bool = False
) -> Iterator[str]:
    """`collect`'s paths as the walk finds them: unsorted, each once; errors raised on the way.

    `refuse_dir_links`: a symlink to a directory is an ArtifactError naming it, not skipped.
    """
    for found in iter_collect_batches(base, patterns, excludes, refuse_dir_links=refuse_dir_links):
        yield from found


def iter_collect_batches(
    base: str, patterns: Iterable[Pattern], excludes: Excludes, *, refuse_dir_links: bool = False
) -> Iterator[list[str]]:
    """`iter_collect`'s paths a directory at a time (no Python step per file between them)."""
    base_real = os.path.realpath(base)
    roots: dict[str, list[Pattern]] = {}
    for pat in patterns:
        roots.setdefault(pat.root, []).append(pat)
    # One root's walk meets each file once; only overlapping roots ("a/**", "a/b/*") repeat.
    seen: set[str] | None = set() if len(roots) > 1 else None
    for root, pats in roots.items():
        new = 0
        for found in _walk_root(base_real, root, pats, excludes, refuse_dir_links):
            if seen is not None:
                found = [rel for rel in found if rel not in seen]
                seen.update(found)
            if found:
                new += len(found)
                yield found
        if not new:
            log.debug("patterns %s matched nothing", ", ".join(p.text for p in pats))


def _walk_root(
    base_real: str, root: str, pats: list[Pattern], excludes: Excludes, refuse_dirs: bool = False
) -> Iterator[list[str]]:
    """The matches below one root, one directory's worth at a time, in walk order."""
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
            _refuse_special(root, st.st_mode)
            if stat.S_ISLNK(st.st_mode) and not _check_link(start, root, base_real, refuse_dirs):
                return
            if stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
                check_name(root)
                yield [root]
            return
    match = _matcher(pats)
    prefix = root + "/" if root else ""
    stack = [(start, prefix)]
    while stack:
        dirpath, relprefix = stack.pop()
        try:
            with os.scandir(dirpath) as it:
                # In name order, subdirectories visited in order: the walk yields nearly sorted
                # paths, and sorting them at the end is then close to linear.
                entries = sorted(it, key=_name)
        except OSError as exc:
            raise ArtifactError(
                printable(relprefix.rstrip("/") or "."), f"cannot list: {exc.strerror}"
            ) from exc
        files = _plain_files(entries)
        if files is None:  # a symlink or special file among them: entry by entry
            found, subdirs = _entries(entries, relprefix, match, excludes, base_real, refuse_dirs)
        else:
            names, dirs = files
            found = excludes.keep_files(relprefix, names)
            if match is not None:
                found = [rel for rel in found if match(rel)]
            joined = "".join(found)
            if not joined.isascii() or "\\" in joined or ":" in joined:
                for rel in found:
                    check_name(rel)
            subdirs = []
            for entry in dirs:
                rel = relprefix + entry.name
                if not excludes.dir_excluded(rel, entry.name):
                    subdirs.append((entry.path, rel + "/"))
        if found:
            yield found
        stack.extend(reversed(subdirs))


def _plain_files(entries: list[_Entry]) -> tuple[list[str], list[_Entry]] | None:
    """(names of the regular files, the directories) when that is all there is, else None."""
    if all([entry.is_file(follow_symlinks=False) for entry in entries]):
        return [entry.name for entry in entries], []  # the common case, at C speed
    names: list[str] = []
    dirs: list[_Entry] = []
    for entry in entries:
        if entry.is_file(follow_symlinks=False):
            names.append(entry.name)
        elif entry.is_dir(follow_symlinks=False):
            dirs.append(entry)
        else:
            return None
    return names, dirs


def _matcher(pats: list[Pattern]) -> Callable[[str], object] | None:
    """A test that a relative path matches one of `pats`; None when every path does."""
    if any(p.whole_root for p in pats):
        return None
    if len(pats) == 1:
        return pats[0].regex.match
    regexes = [p.regex for p in pats]
    return lambda rel: any(r.match(rel) for r in regexes)


def _entries(
    entries: list[_Entry],
    relprefix: str,
    match: Callable[[str], object] | None,
    excludes: Excludes,
    base_real: str,
    refuse_dirs: bool = False,
) -> tuple[list[str], list[tuple[str, str]]]:
    """One directory's matches and subdirectories, entry by entry: symlinks, special files."""
    found: list[str] = []
    subdirs: list[tuple[str, str]] = []
    for entry in entries:
        rel = relprefix + entry.name
        if entry.is_dir(follow_symlinks=False):
            if not excludes.dir_excluded(rel, entry.name):
                subdirs.append((entry.path, rel + "/"))
            continue
        if excludes.file_excluded(rel, entry.name):
            continue
        if match is not None and not match(rel):
            continue
        if entry.is_symlink():
            if not _check_link(entry.path, rel, base_real, refuse_dirs):
                continue
        elif not entry.is_file(follow_symlinks=False):
            try:
                mode = entry.stat(follow_symlinks=False).st_mode
            except OSError:
                continue  # vanished while listed
            _refuse_special(rel, mode)
            continue
        check_name(rel)
        found.append(rel)
    return found, subdirs


_name = operator.attrgetter("name")
_Entry = os.DirEntry[str]


class Inventory(NamedTuple):
    """Every entry under some directories: the regular files, and the rest refused by name."""

    files: list[str]  # relative POSIX paths of regular files, sorted
    refused: list[tuple[str, str]]  # (printable relative path, reason), sorted


def walk_all(base: str, roots: Iterable[str], prune: Iterable[str] = ()) -> Inventory:
    """Every entry under `roots` (relative to `base`), with no excludes at all.

    For the final products check and the registry re-hash: `__pycache__/`, `.git/`, `.venv/` and
    dot-directories are listed like anything else. Symlinks (to files or directories, inside or
    outside), FIFOs, sockets, devices, unlistable directories and names that are not UTF-8 are
    refused by name; nothing is opened or followed (the type comes from the directory entry).
    A root that does not exist contributes nothing; a root that is a regular file is listed; a
    root whose parent directories resolve outside base is refused, as `iter_collect` refuses it.
    `prune`: relative directories left out entirely (the links directory).
    """
    files: set[str] = set()
    refused: dict[str, str] = {}
    pruned = {p.strip("/") for p in prune}

    def refuse(rel: str, why: str) -> None:
        refused.setdefault(printable(rel), why)

    stack: list[str] = []
    base_real = os.path.realpath(base)
    for raw in roots:
        root = "" if raw.strip("/") in ("", ".") else check_relative(raw.rstrip("/"), what="root")
        path = os.path.join(base, root) if root else base
        try:
            mode = os.lstat(path).st_mode
        except FileNotFoundError:
            continue
        except OSError as exc:
            refuse(root or ".", f"cannot read: {exc.strerror}")
            continue
        if root and not _inside(os.path.realpath(os.path.dirname(path)), base_real):
            # A directory above the root is a symlink out of base (the recorder refuses it too).
            refuse(root, "directory reaches outside the base directory")
            continue
        if stat.S_ISDIR(mode):
            stack.append(root)
        else:
            _classify(root, mode, files, refuse)
    seen_dirs: set[str] = set()
    while stack:
        rel_dir = stack.pop()
        if rel_dir in seen_dirs:  # nested roots ("models", "models/sub") are listed once
            continue
        seen_dirs.add(rel_dir)
        prefix = rel_dir + "/" if rel_dir else ""
        try:
            with os.scandir(os.path.join(base, rel_dir) if rel_dir else base) as it:
                for entry in it:
                    rel = prefix + entry.name
                    try:
                        if entry.is_dir(follow_symlinks=False):
                            if rel not in pruned:
                                stack.append(rel)
                            continue
                        if entry.is_file(follow_symlinks=False):
                            _classify(rel, stat.S_IFREG, files, refuse)
                            continue
                        mode = entry.stat(follow_symlinks=False).st_mode
                    except OSError as exc:
                        refuse(rel, f"cannot read: {exc.strerror}")
                        continue
                    _classify(rel, mode, files, refuse)
        except OSError as exc:
            refuse(rel_dir or ".", f"cannot list directory: {exc.strerror}")
    return Inventory(sorted(files), sorted(refused.items()))


def _classify(rel: str, mode: int, files: set[str], refuse: Callable[[str, str], None]) -> None:
    if stat.S_ISLNK(mode):
        refuse(rel, "is a symlink; symlinks are not followed here")
    elif stat.S_ISREG(mode):
        problem = name_problem(rel)
        if problem is not None:
            refuse(rel, problem)
            return
        files.add(rel)
    else:
        refuse(rel, f"is {special_kind(mode) or 'not a regular file'}, not a regular file")
