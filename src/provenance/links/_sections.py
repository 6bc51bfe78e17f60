"""Artifact sections of a canonical link payload, parsed byte by byte and shared between links.

Contract: for every payload, `fast_parse` either returns None (the caller then parses the whole
payload with `provenance._fs.load_json_bounded`) or exactly the document that whole parse would
give, with `materials` and `products` as `ArtifactMap`s. tests/unit/test_link_sections.py holds this
module to that contract differentially (hypothesis, against the standard-library `json` parse
and the whole-payload path, including the red-team shapes that broke earlier versions). Nothing
here is trusted on its own: any payload whose shape is not the plain one is left to the whole
parse, which names what is wrong.

Why it exists: a million-artifact link is ~115 MB of payload, and a step's materials are usually
the products of the step before. Parsing each distinct section once (cached by the sha256 of its
text, and a section that extends a cached one parses only its new entries) and holding it as a
compact `ArtifactMap` is what keeps verification of 1M-file steps under 500 MB and ~4x faster
than in-toto-verify.
"""

from __future__ import annotations

import hashlib
import itertools
import operator
import secrets
from dataclasses import dataclass
from typing import Any

from provenance._fs import load_json_bounded, load_json_plain
from provenance.errors import LinkFormatError
from provenance.links._artifacts import ArtifactMap

_HEX_AND_NEWLINE = b"0123456789abcdef\n"


def _all_hex64(joined: str, n: int) -> bool:
    """`joined` is `n` strings of 64 lowercase hex digits joined by newlines.

    All C-speed checks: the length, a newline exactly every 65th character and nowhere else,
    hex only.
    """
    return (
        len(joined) == 65 * n - 1
        and joined.isascii()
        and joined[64::65] == "\n" * (n - 1)
        and joined.count("\n") == n - 1
        and not joined.encode("ascii").translate(None, _HEX_AND_NEWLINE)
    )


_SHA256 = operator.itemgetter("sha256")


def plain(value: Any) -> bool:
    """`value` maps every artifact to exactly `{"sha256": <64 lowercase hex>}`.

    That is the shape every link written here has: type, size and digest checks over all
    entries at once (map, join and one translate run in C).
    """
    if type(value) is not dict:
        return False
    entries = list(value.values())
    if not entries:
        return True
    if {dict} != set(map(type, entries)) or {1} != set(map(len, entries)):
        return False
    try:
        digests = list(map(_SHA256, entries))
    except KeyError:
        return False
    return {str} == set(map(type, digests)) and _all_hex64("\n".join(digests), len(digests))


# A payload in canonical form (ours, and upstream in-toto's) ends with its two artifact sections:
# `...,"materials":{…},"name":"…","products":{…}}`. They are cut out at these markers, the rest
# is parsed with a random placeholder string in each hole, and each section on its own. If the
# placeholders come back as the top-level `materials` and `products`, each hole was exactly the
# value of that key (JSON values do not depend on their context), so the combination is what
# parsing the whole payload gives. Anything unusual takes the whole-payload path, which names
# what is wrong.
#
# A large section is parsed in pieces cut before a `"},"` (where one plain entry ends and the
# next begins), each piece as an object of its own: if every piece is a valid object, the
# section is exactly their members in order (JSON's grammar is unambiguous), so a cut inside a
# string (a path may contain `"},"`) only ever makes a piece invalid, and the whole section is
# then parsed at once. Only one piece's dicts exist at a time; the section is kept as an
# `ArtifactMap`. Sections are cached across the links of one verification by the sha256 of
# their text: a step's materials are usually the products of the step before, parsed once.
_MATERIALS, _NAME, _PRODUCTS = b',"materials":{', b',"name":"', b',"products":{'
_HOLE = secrets.token_hex(16)
_HOLES = (f'"{_HOLE}-m"'.encode(), f'"{_HOLE}-p"'.encode())
_MIN_SECTION = 4096  # smaller sections are parsed with the rest
_EXTEND_CANDIDATES = 16  # cached sections a new one may extend (the most recent)
_CHUNK = 4 << 20  # bytes of a section parsed at once
_ENTRY_END = b'"},"'
_HEAD = 256  # bytes of a cached section's text a longer one is searched for
_MAX_PARTS = 8  # an extension of extensions beyond this is flattened into one dict

Buffer = bytes | bytearray


@dataclass(frozen=True)
class _Cached:
    """A parsed section, found again by the sha256 of its inner text (without the braces)."""

    length: int  # of the inner text
    head: bytes  # its first bytes
    artifacts: ArtifactMap


def _section_entries(doc: Any) -> int | None:
    return 2 * len(doc) if plain(doc) else None


def sha256_map(doc: dict[str, dict[str, str]]) -> dict[str, str]:
    """Path -> sha256 hex of a section that `plain` accepted."""
    return dict(zip(doc, map(_SHA256, doc.values()), strict=True))


def _parse_pieces(buf: Buffer, start: int, stop: int) -> dict[str, str] | None:
    """The members in `buf[start:stop]` (a section's text without its braces) as path -> hex.

    Parsed a piece at a time; None unless every piece is a plain object and no key repeats.
    """
    view = memoryview(buf)
    shas: dict[str, str] = {}
    total = 0
    while True:
        cut = buf.find(_ENTRY_END, start + _CHUNK, stop) if start + _CHUNK < stop else -1
        end = stop if cut < 0 else cut + 2
        doc = load_json_plain(b"{" + view[start:end] + b"}", _section_entries)
        if doc is None or (not doc and (end > start or total)):
            return None  # not a member list (`{,` or `,,`): the whole parse says what is wrong
        total += len(doc)
        shas.update(sha256_map(doc))
        if cut < 0:
            break
        start = end + 1  # past the comma
    return shas if len(shas) == total else None


def _plain_section(buf: Buffer, start: int, stop: int) -> ArtifactMap | None:
    """`buf[start:stop]` (`{…}`) as an ArtifactMap when it is a plain section, else None."""
    shas = _parse_pieces(buf, start + 1, stop - 1)
    return None if shas is None else ArtifactMap(shas)


def _extended(
    buf: Buffer, start: int, stop: int, sections: dict[bytes, _Cached]
) -> ArtifactMap | None:
    """`buf[start:stop]` as a cached section with entries before and/or after it, or None.

    A step's materials are often an earlier step's products plus its code and configuration,
    which sort before or after the data. If the text is `{H,K,T}` where `K` is a cached
    section's inner text (found by its first bytes, confirmed by its digest) and `{H}` and
    `{T}` each parse as plain sections on their own, the text is the object whose members are
    those of H, K and T in that order (each piece is a whole member list, so no string or value
    spans a cut); only H and T are parsed, K's part is shared.
    """
    # Only the most recent few cached sections are looked at (taken before any is filtered),
    # so a functionary who signs many links cannot make reading them quadratic.
    recent = itertools.islice(reversed(sections.items()), _EXTEND_CANDIDATES)
    candidates = [
        (digest, known)
        for digest, known in recent
        if known.artifacts and _MIN_SECTION <= known.length < stop - start - 2
    ]
    view = memoryview(buf)
    for digest, known in candidates:
        at = buf.find(known.head, start + 1, stop - 1)
        for _ in range(4):  # the first few places its first bytes occur
            if at < 0:
                break
            end = at + known.length
            # The text's own closing brace must lie outside the match, commas around it.
            if (
                end <= stop - 1
                and (at == start + 1 or buf[at - 1] == ord(","))
                and (end == stop - 1 or buf[end] == ord(","))
                and hashlib.sha256(view[at:end]).digest() == digest
            ):
                return _join(buf, (start + 1, at - 1), known.artifacts, (end + 1, stop - 1))
            at = buf.find(known.head, at + 1, stop - 1)
    return None


def _join(
    buf: Buffer, head: tuple[int, int], known: ArtifactMap, tail: tuple[int, int]
) -> ArtifactMap | None:
    pieces: list[dict[str, str]] = []
    for a, b in (head, tail):
        if b < a:  # nothing on this side (no comma either)
            pieces.append({})
            continue
        shas = _parse_pieces(buf, a, b)
        if not shas:
            # Not a member list (`{ ,K}` has an empty one): the whole section is parsed and
            # says what is wrong with it.
            return None
        pieces.append(shas)
    before, after = pieces
    # A key in two pieces is a duplicate key of the whole section: refused there, by name.
    if any(map(known.__contains__, before)) or any(map(known.__contains__, after)):
        return None
    if any(map(before.__contains__, after)):
        return None
    parts = (before, *known.parts, after)
    if len(parts) > _MAX_PARTS:
        flat: dict[str, str] = {}
        for part in parts:
            flat.update(part)
        parts = (flat,)
    return ArtifactMap(*parts)


def _section(
    buf: Buffer, start: int, stop: int, sections: dict[bytes, _Cached]
) -> ArtifactMap | None:
    """The section `buf[start:stop]`, from the cache, as an extension, or parsed.

    None if it is not a plain `{…}` section (the helpers above take its braces as checked
    here).
    """
    if stop - start < 2 or buf[start] != ord("{") or buf[stop - 1] != ord("}"):
        return None
    inner = memoryview(buf)[start + 1 : stop - 1]
    digest = hashlib.sha256(inner).digest()
    cached = sections.get(digest)
    if cached is not None:
        return cached.artifacts
    found = _extended(buf, start, stop, sections) or _plain_section(buf, start, stop)
    if found is not None:
        sections[digest] = _Cached(len(inner), bytes(inner[:_HEAD]), found)
    return found


def fast_parse(payload: Buffer, path: str, sections: dict[bytes, _Cached]) -> dict[str, Any] | None:
    """The link document of `payload` with its sections as ArtifactMaps, or None.

    None means "parse the whole payload": the payload is not canonical, a section is not
    plain, or it is too small to be worth cutting out. `sections` is the cache of one
    verification (shared by all its links; only this module reads or writes it).
    """
    m = payload.find(_MATERIALS)
    n = payload.find(_NAME, m) if m >= 0 else -1
    p = payload.find(_PRODUCTS, n) if n >= 0 else -1
    if p < 0 or not payload.endswith(b"}") or max(n - m, len(payload) - p) < _MIN_SECTION:
        return None
    spans = ((m + len(_MATERIALS) - 1, n), (p + len(_PRODUCTS) - 1, len(payload) - 1))
    parsed = []
    for a, b in spans:
        section = _section(payload, a, b, sections)
        if section is None:
            return None
        parsed.append(section)
    rest = b"".join(
        (
            payload[: m + len(_MATERIALS) - 1],
            _HOLES[0],
            payload[n : p + len(_PRODUCTS) - 1],
            _HOLES[1],
            b"}",
        )
    )
    try:
        doc = load_json_bounded(rest, path, what="link payload", error=LinkFormatError)
    except LinkFormatError:
        return None
    if (
        not isinstance(doc, dict)
        or doc.get("materials") != f"{_HOLE}-m"
        or doc.get("products") != f"{_HOLE}-p"
    ):
        return None
    doc["materials"], doc["products"] = parsed
    return doc
