"""Path normalisation and the rule that recorded paths never leave the base directory."""

from __future__ import annotations

import posixpath
from collections.abc import Iterable

from provenance.errors import PathEscapeError


def check_relative(path: str, *, what: str = "path") -> str:
    """Return `path` as a normalised relative POSIX path, or raise if it is absolute or escapes.

    Used both for patterns given by users and for artifact paths read from (untrusted) links.
    """
    if not path or "\x00" in path:
        raise PathEscapeError(path or "''", f"{what} is empty or contains NUL")
    if "\\" in path:
        raise PathEscapeError(path, f"{what} must use '/' separators")
    if path.startswith("/") or (len(path) > 1 and path[1] == ":"):
        raise PathEscapeError(
            path, f"{what} is absolute; recorded paths are relative to the base dir"
        )
    norm = posixpath.normpath(path)
    if norm == ".." or norm.startswith("../"):
        raise PathEscapeError(path, f"{what} escapes the base directory")
    return norm


def is_safe_relative(path: str) -> bool:
    """True for a relative, normalised POSIX path inside the base (fast: no normpath call)."""
    if not path or path[0] == "/" or "\\" in path or "\x00" in path or "//" in path:
        return False
    if path.endswith("/") or (len(path) > 1 and path[1] == ":"):
        return False
    wrapped = "/" + path + "/"
    return "/./" not in wrapped and "/../" not in wrapped


def unsafe_paths(paths: Iterable[str]) -> list[str]:
    """The paths that are not safe relative paths."""
    return [p for p in paths if not is_safe_relative(p)]
