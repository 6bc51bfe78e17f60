"""Strict readers for untrusted JSON objects: unknown keys refused, every type checked.

Predicates are parsed from signed but still foreign documents; a reader that ignored a misspelt
key would silently drop a constraint (in-toto's ``treshold`` lesson), so every object is read
through one `Fields` and closed with `done()`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from provenance.errors import InputError

_HEX = re.compile(r"[0-9a-f]+\Z")
# Lengths of the hex digests we know; other algorithms only need to be non-empty strings.
_DIGEST_LENGTHS = {"sha256": 64, "sha384": 96, "sha512": 128, "sha1": 40, "gitCommit": 40}


class Fields:
    """One JSON object read field by field; `where` names it in errors (`predicate.policy`)."""

    def __init__(self, doc: Any, where: str, source: str | None) -> None:
        if not isinstance(doc, dict):
            raise InputError(source, f"{where} must be a JSON object, got {_kind(doc)}")
        self.doc: dict[str, Any] = doc
        self.where = where
        self.source = source
        self._seen: set[str] = set()

    def error(self, field: str, message: str) -> InputError:
        return InputError(self.source, f"{self.where}.{field}: {message}")

    def get(self, name: str, required: bool = True) -> Any:
        self._seen.add(name)
        if name not in self.doc:
            if required:
                raise InputError(self.source, f"{self.where}: required field '{name}' is missing")
            return None
        return self.doc[name]

    def text(self, name: str, required: bool = True, *, empty: bool = False) -> str | None:
        value = self.get(name, required)
        if value is None and not required:
            return None
        if not isinstance(value, str):
            raise self.error(name, f"must be a string, got {_kind(value)}")
        if not value and not empty:
            raise self.error(name, "must not be empty")
        return value

    def req_text(self, name: str) -> str:
        value = self.text(name)
        assert value is not None
        return value

    def str_list(self, name: str, required: bool = True) -> list[str]:
        value = self.get(name, required)
        if value is None and not required:
            return []
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.error(name, "must be a list of strings")
        return list(value)

    def obj(self, name: str, required: bool = True) -> Any:
        value = self.get(name, required)
        if value is None and not required:
            return None
        if not isinstance(value, dict):
            raise self.error(name, f"must be a JSON object, got {_kind(value)}")
        return value

    def array(self, name: str, required: bool = True) -> list[Any]:
        value = self.get(name, required)
        if value is None and not required:
            return []
        if not isinstance(value, list):
            raise self.error(name, f"must be a list, got {_kind(value)}")
        return value

    def done(self) -> None:
        """Refuse any key that was not read: a field we do not know is a field we do not check."""
        unknown = sorted(set(self.doc) - self._seen)
        if unknown:
            raise InputError(
                self.source,
                f"{self.where}: unknown field(s) {', '.join(repr(u) for u in unknown)}",
            )


def digest_set(value: Any, where: str, source: str | None) -> dict[str, str]:
    """A DigestSet (algorithm -> lowercase hex); known algorithms must have their exact length."""
    if not isinstance(value, Mapping) or not value:
        raise InputError(source, f"{where}: digest must be a non-empty object")
    out: dict[str, str] = {}
    for alg, hexd in value.items():
        if not isinstance(alg, str) or not isinstance(hexd, str) or not alg or not hexd:
            raise InputError(source, f"{where}: digest entries must be non-empty strings")
        want = _DIGEST_LENGTHS.get(alg)
        if want is not None and (len(hexd) != want or not _HEX.match(hexd)):
            raise InputError(source, f"{where}: {alg} digest must be {want} lowercase hex digits")
        out[alg] = hexd
    return out


def _kind(value: Any) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}.get(
        type(value), "null" if value is None else "a number"
    )
