"""What some patterns selected: path -> sha256, kept packed, and its link JSON.

`ArtifactSet` holds the sorted paths and one buffer of raw digests (~100 bytes a file, not a
dict of dicts) and writes its canonical JSON (`{"path":{"sha256":"hex"},...}`, byte for byte
`canonical_json` of the in-toto form) in pieces (`render`). `Rendering` writes that JSON while
the worker processes are still hashing, in path order as their results come in, so the link
payload can later be built around it in place (`ArtifactSet.take_json`) instead of after the
hashing, on one core.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from json.encoder import encode_basestring_ascii

from provenance._fs import canonical_json

_JSON_STEP = 8192  # entries encoded per piece: bounded temporary strings
_MID, _END = '":{"sha256":"', '"},"'  # between a path and its digest; after the digest
_RENDER_MIN = 4096  # `Rendering` renders once this many files are in (fewer calls)


def render(out: bytearray, paths: Sequence[str], packed: bytes | bytearray, *, first: bool) -> None:
    """Append the JSON entries of `paths` (their digests `packed` 32 bytes each, in order).

    The entries are comma-separated, with a comma before them unless `first`; no braces.
    """
    enc = encode_basestring_ascii  # the encoder json.dumps (and so canonical_json) uses
    for start in range(0, len(paths), _JSON_STEP):
        chunk = paths[start : start + _JSON_STEP]
        digests = packed[32 * start : 32 * (start + _JSON_STEP)]
        if start or not first:
            out += b","
        joined = "".join(chunk)
        if joined.isascii() and joined.isprintable() and '"' not in joined and "\\" not in joined:
            # Nothing to escape (json's ASCII encoder only escapes `"`, `\\` and characters
            # outside space..tilde): the entries are interleaved at C speed.
            hexes = digests.hex(" ", 32).split(" ")  # 64 hex digits each, in C
            parts = itertools.chain.from_iterable(
                zip(chunk, itertools.repeat(_MID), hexes, itertools.repeat(_END))
            )
            out += b'"' + "".join(parts)[:-2].encode("ascii")  # no `,"` after the last
            continue
        hexed = digests.hex()
        out += ",".join(
            f'{enc(p)}:{{"sha256":"{hexed[64 * k : 64 * k + 64]}"}}' for k, p in enumerate(chunk)
        ).encode("ascii")


class Rendering:
    """The JSON of files being hashed, rendered as their digests come in, in path order.

    `paths` and `packed` are the hashing job's own lists (they grow while the walk goes on);
    `upto(n)` is told that files `[0, n)` are hashed, none failed and none was left over for
    another pass. `json()` finishes the object once every file is in.
    """

    def __init__(self, paths: list[str], packed: bytearray) -> None:
        self.paths, self.packed = paths, packed
        self.done = 0
        self.out = bytearray(b"{")

    def upto(self, n: int, *, last: bool = False) -> None:
        """Render files `done .. n` (only once enough are in, unless `last`)."""
        if n - self.done < (1 if last else _RENDER_MIN):
            return
        # Copies of the slices: the job still grows `packed`, which a view would forbid.
        render(
            self.out,
            self.paths[self.done : n],
            self.packed[32 * self.done : 32 * n],
            first=self.done == 0,
        )
        self.done = n

    def json(self) -> bytearray:
        """The whole object; call once every file's digest is in `packed`."""
        self.upto(len(self.paths), last=True)
        self.out += b"}"
        return self.out


class ArtifactSet:
    """Relative POSIX path -> sha256 hex digest, for the files some patterns selected.

    Hashing keeps it compact (sorted paths plus one packed digest buffer, ~100 bytes per file)
    and writes the link's JSON straight from it; the `digests` dict is built only when asked for.
    """

    __slots__ = ("_digests", "_json", "_packed", "_paths")

    def __init__(self, digests: Mapping[str, str] | None = None) -> None:
        self._digests: dict[str, str] | None = dict(digests or {})
        self._paths: list[str] = list(self._digests)
        self._packed: bytes | bytearray = b""
        self._json: bytearray | None = None

    @classmethod
    def packed(
        cls, paths: list[str], packed: bytes | bytearray, json: bytearray | None = None
    ) -> ArtifactSet:
        """From strictly sorted `paths` and their digests packed 32 bytes each, in order.

        `json`: `to_json()` already rendered (by `Rendering`), for `take_json`.
        """
        if len(packed) != 32 * len(paths):
            raise ValueError("one 32-byte digest per path is expected")
        obj = cls.__new__(cls)
        obj._paths, obj._packed, obj._digests, obj._json = paths, packed, None, json
        return obj

    @property
    def digests(self) -> dict[str, str]:
        """Path -> hex digest (built on first use from the packed form)."""
        if self._digests is None:
            hexed = self._packed.hex()
            self._digests = {p: hexed[64 * i : 64 * i + 64] for i, p in enumerate(self._paths)}
        return self._digests

    def add(self, digests: Mapping[str, str]) -> None:
        """Join more artifacts (e.g. object-store URIs) to the set; the dict form is kept."""
        merged = self.digests
        merged.update(digests)
        self._paths = sorted(merged)
        self._json = None

    def as_in_toto(self) -> dict[str, dict[str, str]]:
        """The in-toto link form: path -> {"sha256": digest}."""
        return {path: {"sha256": hexd} for path, hexd in self.digests.items()}

    def to_json(self) -> bytes | bytearray:
        """`canonical_json(self.as_in_toto())`, written without building that dict."""
        out = bytearray()
        self.write_json(out)
        return out

    def write_json(self, out: bytearray) -> None:
        """Append `to_json()` to `out` (the link payload is assembled in one buffer)."""
        if self._digests is not None:
            out += canonical_json(self.as_in_toto())
        elif self._json is not None:
            out += self._json
        else:
            out += b"{"
            render(out, self._paths, self._packed, first=True)
            out += b"}"

    def take_json(self) -> bytearray | None:
        """`to_json()` as rendered while hashing, handed over: the set keeps no reference.

        A million-artifact set's JSON is ~100 MB; the link payload is built around it in place
        (`links.link_payload`) instead of copying it. None when it was not rendered early.
        """
        json, self._json = self._json, None
        return json if self._digests is None else None

    def __len__(self) -> int:
        return len(self._paths)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ArtifactSet) and self.digests == other.digests

    __hash__ = None  # type: ignore[assignment]  # mutable-looking, compared by content

    def __repr__(self) -> str:
        return f"ArtifactSet({len(self)} files)"
