"""ArtifactMap: a plain artifact section held as path -> sha256 reads as in-toto's
`{path: {"sha256": hex}}` to every consumer, parts and all."""

from __future__ import annotations

import pytest

from provenance.links import ArtifactMap, membership, shas_of

A, B, C = "a" * 64, "b" * 64, "c" * 64


def test_reads_as_a_dict_of_digest_dicts() -> None:
    plain = {"x": {"sha256": A}, "y": {"sha256": B}, "z": {"sha256": C}}
    m = ArtifactMap({"x": A}, {"y": B}, {"z": C})
    assert m == plain and plain == m and dict(m) == plain
    assert list(m) == ["x", "y", "z"] and len(m) == 3
    assert m["y"] == {"sha256": B} and m.get("w") is None and m.get("w", 1) == 1
    assert "z" in m and "w" not in m
    with pytest.raises(KeyError):
        m["w"]
    assert m != {**plain, "y": {"sha256": B, "sha512": "0" * 128}}  # not plain: not equal
    assert m != {"x": {"sha256": A}} and m != ArtifactMap({"x": A, "y": B})
    assert m == ArtifactMap({"x": A, "y": B, "z": C})  # parts do not matter
    assert ArtifactMap() == {} and not ArtifactMap({})


def test_bulk_lookups_agree_with_single_ones() -> None:
    m = ArtifactMap({"h": C}, {f"p{i}": A for i in range(100)}, {"t": B})
    paths = ["h", "p5", "t", "missing", "p99"]
    assert shas_of(m, paths) == [m.sha256(p) for p in paths] == [C, A, B, None, A]
    get = m.sha256_getter()
    assert [get(p) for p in paths] == shas_of(m, paths)
    has = membership(m)
    assert [has(p) for p in paths] == [True, True, True, False, True]
    single = ArtifactMap({"x": A})
    assert membership(single)("x") and not membership(single)("y")
