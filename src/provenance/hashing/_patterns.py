"""Glob patterns compiled once: `**` crosses directories, `*` and `?` stay within one name.

A pattern without glob characters names a file, or a directory whose whole content is meant.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from provenance.errors import PatternError
from provenance.hashing._paths import check_relative

_GLOB_CHARS = frozenset("*?[")


def has_glob(text: str) -> bool:
    """True if `text` holds glob characters (so it is a pattern, not a literal path)."""
    return any(c in _GLOB_CHARS for c in text)


def _class_end(pattern: str, i: int) -> int:
    """Index of the ']' closing the character class that opens at `i` (-1 when none)."""
    k = i + 2 if pattern.startswith("[!", i) else i + 1
    return pattern.find("]", k)


def check_glob(pattern: str, what: str = "pattern") -> str:
    """Return `pattern` if it is a well-formed glob; else PatternError naming it and why.

    Refused: empty or blank, NUL, a '[' without its ']', a stray ']', an empty class ('[]',
    '[!]'), a '[' or '/' inside a class, and a reversed range ('[z-a]'). Layout rules
    (in-toto's fnmatch) and step patterns (this module) share these rules, so a pattern is
    accepted or refused the same way when a step is declared and when a layout is loaded.
    """

    def bad(why: str) -> PatternError:
        return PatternError(None, f"invalid {what} {pattern!r}: {why}")

    if not isinstance(pattern, str) or not pattern.strip():
        raise bad("empty")
    if "\x00" in pattern:
        raise bad("contains NUL")
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "]":
            raise bad(f"']' at offset {i} closes no '['")
        if c == "[":
            j = _class_end(pattern, i)
            if j == -1:
                raise bad(f"'[' at offset {i} is never closed")
            body = pattern[i + 2 if pattern.startswith("[!", i) else i + 1 : j]
            if not body:
                raise bad(f"empty character class at offset {i}")
            if "[" in body or "/" in body:
                raise bad(f"character class at offset {i} may not hold '[' or '/'")
            for k in range(1, len(body) - 1):
                if body[k] == "-" and body[k - 1] > body[k + 1]:
                    raise bad(f"reversed range '{body[k - 1 : k + 2]}'")
            i = j
        i += 1
    return pattern


def _class_regex(body: str) -> str:
    """A regex class body: every character literal except '-' between two others (a range)."""
    if body.startswith("!"):
        return "^" + _class_regex(body[1:])
    return "".join(
        "-" if c == "-" and 0 < k < len(body) - 1 else re.escape(c) for k, c in enumerate(body)
    )


def _translate(pattern: str) -> str:
    """Translate one glob into a regex body (no anchors)."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            if pattern.startswith("**", i):
                i += 2
                if pattern.startswith("/", i):  # "a/**/b" also matches "a/b"
                    i += 1
                    out.append("(?:.*/)?")
                else:
                    out.append(".*")
                continue
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":  # well-formed: check_glob ran first
            j = _class_end(pattern, i)
            out.append("[" + _class_regex(pattern[i + 1 : j]) + "]")
            i = j
        else:
            out.append(re.escape(c))
        i += 1
    return "".join(out)


@dataclass(frozen=True)
class Pattern:
    """One include pattern: where to start walking and what relative paths it accepts."""

    text: str
    root: str  # relative path ("" = base) at or below which matches can exist
    regex: re.Pattern[str]
    whole_root: bool  # every file below `root` matches: no per-file regex needed

    @classmethod
    def compile(cls, text: str) -> Pattern:
        check_glob(text)
        stripped = text.rstrip("/") or "."
        if stripped in (".", "./"):
            return cls(text, "", re.compile(r".*", re.S), True)
        norm = check_relative(stripped, what=f"pattern '{text}'")
        parts = norm.split("/")
        literal: list[str] = []
        for part in parts:
            if has_glob(part):
                break
            literal.append(part)
        if len(literal) == len(parts):
            # A plain path: the file itself, or everything below the directory.
            return cls(text, norm, re.compile(re.escape(norm) + r"(?:/.*)?\Z", re.S), True)
        root = "/".join(literal)
        whole = len(literal) == len(parts) - 1 and parts[-1] == "**"
        return cls(text, root, re.compile(_translate(norm) + r"\Z", re.S), whole)

    def matches(self, relpath: str) -> bool:
        return self.regex.match(relpath) is not None


def compile_patterns(patterns: Iterable[str]) -> list[Pattern]:
    """Compile artifact patterns; raises PathEscapeError for one that reaches outside the base."""
    return [Pattern.compile(p) for p in patterns]


class Excludes:
    """Gitignore-like excludes.

    A pattern without '/' matches a name at any depth; one with '/' matches from the base; a
    trailing '/' restricts it to directories.
    """

    DEFAULT = (".git/", ".venv/", "__pycache__/", ".mypy_cache/", ".pytest_cache/")

    def __init__(self, patterns: Iterable[str] = ()) -> None:
        names: list[str] = []
        paths: list[str] = []
        dir_names: list[str] = []
        dir_paths: list[str] = []
        for raw in patterns:
            check_glob(raw, "exclude pattern")
            is_dir = raw.endswith("/")
            pat = raw.strip("/")
            if not pat:
                continue
            if "/" in pat:
                (dir_paths if is_dir else paths).append(_translate(pat))
            else:
                (dir_names if is_dir else names).append(_translate(pat))
        self._name = self._join(names)
        self._path = self._join(paths)
        self._dir_name = self._join(names + dir_names)
        self._dir_path = self._join(paths + dir_paths)
        self.patterns = tuple(patterns)

    @staticmethod
    def _join(parts: list[str]) -> re.Pattern[str] | None:
        return re.compile("(?:" + "|".join(parts) + r")(?:/.*)?\Z", re.S) if parts else None

    def file_excluded(self, relpath: str, name: str) -> bool:
        return bool(
            (self._name and self._name.match(name)) or (self._path and self._path.match(relpath))
        )

    def keep_files(self, prefix: str, names: list[str]) -> list[str]:
        """`prefix + name` for each of `names` (files in one directory) no exclude matches."""
        if self._name is None and self._path is None:
            return [prefix + name for name in names]
        excluded = self.file_excluded
        return [prefix + n for n in names if not excluded(prefix + n, n)]

    def dir_excluded(self, relpath: str, name: str) -> bool:
        return bool(
            (self._dir_name and self._dir_name.match(name))
            or (self._dir_path and self._dir_path.match(relpath))
        )
