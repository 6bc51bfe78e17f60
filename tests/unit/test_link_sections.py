"""Link payloads parsed section by section give exactly what parsing the whole payload gives.

This is the contract of `provenance.links._sections`, checked two ways on every payload below:
against the standard-library `json.loads` of the whole payload (what the section parser accepts,
json reads identically), and against `parse_link` with the section path turned off (the same
link or the same refusal).

`parse_link` cuts a canonical payload's `materials` and `products` out at their markers, parses
the rest with placeholders in the holes, and caches sections by their bytes across links. Every
payload here — canonical ones, decoys that put the markers elsewhere, duplicate keys, odd
digests, escapes and lone surrogates — must give the same link or the same refusal as the
whole-payload parser.
"""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provenance.errors import LinkFormatError
from provenance.links import _model, _sections
from provenance.links._artifacts import ArtifactMap

SETTINGS = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
HEX = "ab" * 32


def _canonical(doc: Any, ascii_only: bool = True) -> bytes:
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=ascii_only).encode()


def _link(materials: Any, products: Any, **extra: Any) -> dict[str, Any]:
    return {
        "_type": "link",
        "byproducts": {},
        "command": ["train"],
        "environment": {"pipeline_run_id": "r"},
        "materials": materials,
        "name": "train",
        "products": products,
        **extra,
    }


def _outcome(payload: bytes, *, fast: bool, monkeypatch: pytest.MonkeyPatch) -> Any:
    with monkeypatch.context() as m:
        m.setattr(_sections, "_MIN_SECTION", 0)  # small test payloads take the section path too
        m.setattr(_sections, "_CHUNK", 40)  # and are parsed in many pieces
        if not fast:
            m.setattr(_model, "fast_parse", lambda *a: None)
        try:
            return _model.parse_link(payload, "x.link")
        except LinkFormatError as exc:
            return ("refused", str(exc))


def _standard_library(payload: bytes) -> Any:
    """The oracle: `json.loads` of the whole payload, duplicate keys refused."""

    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        if len({k for k, _ in pairs}) != len(pairs):
            raise ValueError("duplicate key")
        return dict(pairs)

    return json.loads(payload, object_pairs_hook=unique)


def _agrees_with_json(
    payload: bytes, monkeypatch: pytest.MonkeyPatch, sections: dict[bytes, Any] | None = None
) -> None:
    """The module's contract: whatever `fast_parse` returns (None = "parse it whole") is what
    the standard-library parse of the whole payload gives, entries in the same order."""
    with monkeypatch.context() as m:
        m.setattr(_sections, "_MIN_SECTION", 0)
        m.setattr(_sections, "_CHUNK", 40)
        doc = _sections.fast_parse(payload, "x.link", dict(sections or {}))
    if doc is None:
        return
    ref = _standard_library(payload)  # the section parser accepted it: so must json
    assert isinstance(ref, dict) and ref.keys() == doc.keys(), payload[:300]
    for key, value in ref.items():
        if key in ("materials", "products"):
            assert isinstance(doc[key], ArtifactMap) and doc[key] == value, key
            assert list(doc[key]) == list(value), key
        else:
            assert doc[key] == value, key


def _same(payload: bytes, monkeypatch: pytest.MonkeyPatch) -> Any:
    _agrees_with_json(payload, monkeypatch)
    fast = _outcome(payload, fast=True, monkeypatch=monkeypatch)
    whole = _outcome(payload, fast=False, monkeypatch=monkeypatch)
    assert fast == whole, payload[:300]
    return fast


def _big(prefix: str, n: int = 300) -> dict[str, dict[str, str]]:
    return {f"{prefix}/f{i:05d}": {"sha256": HEX} for i in range(n)}


def test_canonical_link_takes_the_section_path_and_shares_equal_sections() -> None:
    data = _big("data")
    ingest = _canonical(_link({}, data))
    train = _canonical(_link(data, {"model/w": {"sha256": HEX}}))
    sections: dict[bytes, Any] = {}
    first = _model.parse_link(ingest, "ingest.link", sections)
    second = _model.parse_link(train, "train.link", sections)
    assert first.products == data and second.materials == data
    assert second.materials is first.products  # parsed once, shared
    # the section path was taken: parsed in pieces, cached by digest as a compact map
    assert isinstance(first.products, ArtifactMap)
    assert any(c.artifacts is first.products for c in sections.values())
    # one byte differs: not the cached section
    changed = dict(data, **{"data/f00000": {"sha256": "cd" * 32}})
    third = _model.parse_link(_canonical(_link(changed, {})), "evaluate.link", sections)
    assert third.materials == changed and third.materials is not first.products


@pytest.mark.parametrize(
    "payload",
    [
        # a decoy `materials` (big, plain) nested in the environment, before the real one
        _canonical(_link({"real/a": {"sha256": HEX}}, {}, environment={"materials": _big("d")})),
        # a decoy `,"materials":{…},"name":"…"` in the environment: the cut sections and the rest
        # all parse, but the holes are not the top-level values
        _canonical(
            _link(_big("r"), _big("p"), environment={"a": 1, "materials": _big("d"), "name": "q"})
        ),
        # the decoy is the exact text of a section cached from another link
        _canonical(_link({}, {}, environment={"x": {"materials": _big("data")}})),
        # products not last: the cut would swallow the trailing key
        _canonical(_link(_big("a"), _big("b")))[:-1] + b',"zz":1}',
        # duplicate top-level materials (the hole is the second one)
        _canonical(_link(_big("a"), {})).replace(b',"name"', b',"materials":{},"name"', 1),
        _canonical(_link({}, _big("a"))).replace(b'{"_type"', b'{"materials":{"p":1},"_type"'),
        # duplicate path inside a section
        _canonical(_link(_big("a"), {})).replace(b'"a/f00001"', b'"a/f00000"'),
        # digest dicts that are not plain: two algorithms, a key named "name", no sha256, upper hex
        _canonical(_link({"a": {"sha256": HEX, "name": "x"}, **_big("b")}, {})),
        _canonical(_link({"a": {"sha512": "0" * 128}, **_big("b")}, {})),
        _canonical(_link({"a": {"sha256": HEX.upper()}, **_big("b")}, {})),
        # paths with quotes, backslashes, braces, markers and non-ASCII
        _canonical(_link({'a"}"b': {"sha256": HEX}, ',"name":"': {"sha256": HEX}}, _big("c"))),
        _canonical(_link({"ü/é": {"sha256": HEX}, **_big("c")}, {}), ascii_only=False),
        # a lone surrogate escape in a path, and a valid pair
        _canonical(_link(_big("a"), {})).replace(b"a/f00002", b"a/\\ud800x"),
        _canonical(_link(_big("a"), {})).replace(b"a/f00002", b"a/\\ud83d\\ude00"),
        # a huge integer in the rest, invalid JSON in a section, trailing garbage
        _canonical(_link(_big("a"), {}, environment={"n": 2**70})),
        _canonical(_link(_big("a"), {})).replace(b'{"sha256"', b'{"sha256",', 1),
        _canonical(_link(_big("a"), {})) + b" x",
        # whitespace (not canonical) and a payload that is not a link
        json.dumps(_link(_big("a"), _big("b")), sort_keys=True).encode(),
        _canonical({**_link(_big("a"), {}), "_type": "layout"}),
    ],
)
def test_odd_payloads_match_the_whole_payload_parser(
    payload: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    _same(payload, monkeypatch)


def test_refusals_name_the_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    dup = _canonical(_link(_big("a"), {})).replace(b'"a/f00001"', b'"a/f00000"')
    assert _same(dup, monkeypatch) == (
        "refused",
        "x.link: link payload refused: duplicate key 'a/f00000'",
    )
    upper = _canonical(_link({"a": {"sha256": HEX.upper()}, **_big("b")}, {}))
    assert _same(upper, monkeypatch) == (
        "refused",
        "x.link: materials entry 'a' has a malformed sha256",
    )


PATH_CHARS = st.sampled_from(['"', "\\", "}", "{", ",", ":", "a", "/", "ü", "\x00", " ", "name"])
PATHS = st.lists(PATH_CHARS, min_size=1, max_size=6).map("".join)
DIGESTS = st.one_of(
    st.just({"sha256": HEX}),
    st.just({"sha256": HEX, "name": "x"}),
    st.just({"sha512": "0" * 128}),
    st.just({"sha256": "0" * 63}),
    st.just({}),
    st.just("x"),
)
SECTIONS = st.dictionaries(PATHS, DIGESTS, max_size=6)
DECOYS = st.dictionaries(
    st.sampled_from(["a", "materials", "products", "name", "x"]),
    st.one_of(SECTIONS, st.text(max_size=8), st.integers(-(2**70), 2**70)),
    max_size=3,
)


@st.composite
def payloads(draw: st.DrawFn) -> bytes:
    doc = _link(draw(SECTIONS), draw(SECTIONS), environment=draw(DECOYS), byproducts=draw(DECOYS))
    text = _canonical(doc, ascii_only=draw(st.booleans()))
    edit = draw(st.sampled_from(["none", "dup-top", "dup-inner", "tail", "drop-brace", "decoy"]))
    if edit == "dup-top":
        text = text.replace(b',"name"', b',"materials":{},"name"', 1)
    elif edit == "dup-inner" and b'":{"sha256"' in text:
        first = text.index(b'":{"sha256"')
        text = text[: first + 2] + b'"sha256":"x",' + text[first + 2 :]
    elif edit == "tail":
        text = text[:-1] + b',"zz":[]}'
    elif edit == "drop-brace":
        text = text[:-1]
    elif edit == "decoy":
        text = text.replace(b'"environment":{', b'"environment":{"k":{"materials":{}},', 1)
    return text


@SETTINGS
@given(payloads())
def test_random_payloads_match_the_whole_payload_parser(payload: bytes) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        _same(payload, monkeypatch)


# --- a section that extends a cached one ----------------------------------------------------
# Evaluate's materials are ingest's products plus the model: only the extra entries are parsed.

DATA = _big("data")
INGEST = _canonical(_link({}, DATA))


def _primed() -> tuple[dict[bytes, Any], Any]:
    sections: dict[bytes, Any] = {}
    return sections, _model.parse_link(INGEST, "ingest.link", sections)


def _same_extended(payload: bytes, monkeypatch: pytest.MonkeyPatch) -> Any:
    """`payload` read after ingest's link (cache primed) equals the whole-payload parse."""
    with monkeypatch.context() as m:
        m.setattr(_sections, "_MIN_SECTION", 0)
        primed, _ = _primed()
    _agrees_with_json(payload, monkeypatch, primed)
    with monkeypatch.context() as m:
        m.setattr(_sections, "_MIN_SECTION", 0)
        m.setattr(_sections, "_CHUNK", 40)
        sections, _ = _primed()
        try:
            fast = _model.parse_link(payload, "x.link", sections)
        except LinkFormatError as exc:
            fast = ("refused", str(exc))
    whole = _outcome(payload, fast=False, monkeypatch=monkeypatch)
    assert fast == whole, payload[:300]
    if not isinstance(fast, tuple):  # the same order of entries too
        assert list(fast.materials) == list(whole.materials)
    return fast


def test_a_section_extending_a_cached_one_shares_its_entries() -> None:
    sections, ingest = _primed()
    for extra_before, extra_after in ((1, 2), (0, 3), (2, 0)):
        materials = {
            **{f"code/{i}.py": {"sha256": "cd" * 32} for i in range(extra_before)},
            **DATA,
            **{f"model/w{i}": {"sha256": "ef" * 32} for i in range(extra_after)},
        }
        link = _model.parse_link(_canonical(_link(materials, {})), "evaluate.link", sections)
        assert link.materials == materials
        assert list(link.materials) == sorted(materials)  # the document's order
        assert link.materials is not ingest.products
        shared = ingest.products.parts[0]
        assert any(part is shared for part in link.materials.parts)  # shared, not parsed


def _inner(section: dict[str, Any]) -> bytes:
    return _canonical(section)[1:-1]


K = _inner(DATA)
ONE = _inner({"code/a": {"sha256": "cd" * 32}})
ZED = _inner({"zz/a": {"sha256": "cd" * 32}})


def _with_materials(text: bytes) -> bytes:
    """A canonical link whose materials section is exactly `text`."""
    return _canonical(_link({"MARK": {"sha256": HEX}}, {})).replace(
        b'{"MARK":{"sha256":"' + HEX.encode() + b'"}}', text
    )


@pytest.mark.parametrize(
    "section",
    [
        b"{" + ONE + b"," + K + b"," + ZED + b"}",  # the honest case
        b"{" + K + b"," + ZED + b"}",
        b"{ " + ONE + b" ," + K + b"}",  # whitespace around a member: valid JSON
        b"{," + K + b"}",  # empty member lists around a cut: invalid JSON
        b"{" + K + b",}",
        b"{ ," + K + b"}",
        b"{" + K + b", }",
        b"{" + K + b"," + K + b"}",  # every key twice
        b"{" + _inner({"data/f00007": {"sha256": "cd" * 32}}) + b"," + K + b"}",  # duplicate
        b"{" + K + b"," + _inner({"data/f00299": {"sha256": HEX}}) + b"}",  # duplicate, equal
        b'{"x,' + K + b',"y":{"sha256":"' + HEX.encode() + b'"}}',  # head ends inside a string
        b'{"x":"' + K.replace(b'"', b'\\"') + b'"}',  # the cached text escaped inside a string
        b"{" + _inner({"code/a": {"sha256": HEX, "md5": "0" * 32}}) + b"," + K + b"}",  # not plain
        b"{" + _inner({"code/\\ud800": {"sha256": HEX}}) + b"," + K + b"}",  # lone surrogate
        b'{"a":' + b"{" + K + b"}" + b"}",  # the cached section nested as a value
        b"{" + ONE + b"," + K + b"," + ZED,  # no closing brace
        b"{" + ONE + b"," + K,  # no closing brace: the cached text's last `}` would be taken
        b"{" + K,
        b"{" + ONE + b"," + K[:-1] + b"," + ZED + b"}",  # a cut inside the cached text
    ],
)
def test_odd_extensions_match_the_whole_payload_parser(
    section: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    _same_extended(_with_materials(section), monkeypatch)


def test_an_extension_with_a_duplicate_key_is_refused_by_name(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    section = b"{" + _inner({"data/f00007": {"sha256": "cd" * 32}}) + b"," + K + b"}"
    assert _same_extended(_with_materials(section), monkeypatch) == (
        "refused",
        "x.link: link payload refused: duplicate key 'data/f00007'",
    )


PIECES = st.lists(
    st.one_of(
        st.just(K),
        st.just(ONE),
        st.just(ZED),
        st.just(b""),
        st.sampled_from([b" ", b",", b'"', b"{", b"}", b"\\", b'"x":', b'"x"']),
        SECTIONS.map(lambda s: _canonical(s)[1:-1]),
    ),
    min_size=1,
    max_size=5,
)


@SETTINGS
@given(PIECES, st.sampled_from([b",", b"", b" ,", b", "]))
def test_random_extensions_match_the_whole_payload_parser(
    pieces: list[bytes], separator: bytes
) -> None:
    with pytest.MonkeyPatch.context() as monkeypatch:
        _same_extended(_with_materials(b"{" + separator.join(pieces) + b"}"), monkeypatch)


def test_a_cached_section_ending_in_whitespace_is_not_cut_short() -> None:
    """`{M} ` is a valid section; its inner text is not `M}`, so `{H,M},T}` (invalid JSON, with
    T outside the products) is refused as the whole-payload parser refuses it."""
    m = _inner(_big("data", 100))
    payload = (
        b'{"_type":"link","byproducts":{},"command":[],"environment":{},"materials":{'
        + m
        + b'} ,"name":"train","products":{'
        + ONE
        + b","
        + m
        + b"},"
        + ZED
        + b"}}"
    )
    with pytest.raises(LinkFormatError, match="not JSON"):
        _model.parse_link(payload, "x.link", {})
    with pytest.MonkeyPatch.context() as m_:
        m_.setattr(_model, "fast_parse", lambda *a: None)
        with pytest.raises(LinkFormatError, match="not JSON"):
            _model.parse_link(payload, "x.link", {})


def test_only_the_most_recent_cached_sections_are_searched() -> None:
    """A functionary signing many links cannot make reading quadratic: a section extending an
    older cached one is parsed whole (the same result, its entries not shared)."""
    sections, ingest = _primed()
    for i in range(_sections._EXTEND_CANDIDATES):  # newer, unrelated large sections
        other = _big(f"o{i}", 60)  # large enough to be searched, shorter than the new one
        _model.parse_link(_canonical(_link({}, other)), f"o{i}.link", sections)
    materials = {"code/a": {"sha256": "cd" * 32}, **DATA}
    link = _model.parse_link(_canonical(_link(materials, {})), "evaluate.link", sections)
    assert link.materials == materials
    assert all(part is not ingest.products.parts[0] for part in link.materials.parts)


def test_the_extension_search_looks_at_a_bounded_number_of_cached_sections() -> None:
    """Many small cached sections (one functionary signing many links) are never walked: each
    new section looks at the few most recent cache entries only, eligible or not."""

    class Counting(dict):  # counts the cache entries read from the newest end
        seen = 0

        def items(self) -> Any:
            outer, entries = self, dict.items(self)

            class Newest:
                def __reversed__(self) -> Any:
                    for entry in reversed(entries):
                        outer.seen += 1
                        yield entry

            return Newest()

    sections = Counting()
    for i in range(300):  # a small, different materials section in each link
        link = _link({f"c/{i}": {"sha256": HEX}}, DATA)
        _model.parse_link(_canonical(link), f"s{i}.link", sections)
    sections.seen = 0
    materials = {"code/a": {"sha256": "cd" * 32}, **DATA}
    link = _model.parse_link(_canonical(_link(materials, {})), "evaluate.link", sections)
    assert link.materials == materials
    assert 0 < sections.seen <= 2 * _sections._EXTEND_CANDIDATES
