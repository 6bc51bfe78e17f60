"""The products `verify` expects on disk: selecting with `--artifact` first gives what selecting
the whole result gives, and a malformed pattern in a link is refused whatever is selected."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provenance.errors import PatternError
from provenance.hashing import compile_patterns, objects
from provenance.links import LinkData
from provenance.verification._files import expected_products

H0, H1 = {"sha256": "0" * 64}, {"sha256": "1" * 64}
STEPS = ("s0", "s1", "s2")


def _whole_then_selected(
    layout: Any, links: dict[str, LinkData], only: list[str]
) -> dict[str, tuple[str, str]]:
    """The expected products of every step, then the ones `only` selects (the plain rule)."""
    expected: dict[str, tuple[str, str]] = {}
    for step in layout.steps:
        link = links.get(step.name)
        if link is None:
            continue
        gone = [p for p in link.materials if p in expected and p not in link.products]
        for pattern in compile_patterns(objects.local_patterns(link.patterns("products"))):
            for path in filter(pattern.regex.match, gone):
                expected.pop(path, None)
        expected.update((p, (d["sha256"], step.name)) for p, d in link.products.items())
    if not only:
        return expected
    selectors = compile_patterns(only)
    return {p: v for p, v in expected.items() if any(s.regex.match(p) for s in selectors)}


def _layout() -> Any:
    return SimpleNamespace(
        steps=[SimpleNamespace(name=s, expected_materials=[], expected_products=[]) for s in STEPS]
    )


PATHS = st.sampled_from(["a", "b", "data/x", "data/y", "model/w", "model/c.json"])
ARTIFACTS = st.dictionaries(PATHS, st.sampled_from([H0, H1]), max_size=5)
PATTERNS = st.lists(st.sampled_from(["*", "data/*", "model/*", "a", "model/**"]), max_size=2)


@st.composite
def pipelines(draw: st.DrawFn) -> dict[str, LinkData]:
    links = {}
    for name in STEPS:
        if draw(st.booleans()) or name == "s0":
            env = {"patterns": {"products": draw(PATTERNS)}}
            links[name] = LinkData(name, [], draw(ARTIFACTS), draw(ARTIFACTS), {}, env)
    return links


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(links=pipelines(), only=PATTERNS)
def test_selecting_first_equals_selecting_the_whole_result(
    links: dict[str, LinkData], only: list[str]
) -> None:
    got = expected_products(_layout(), links, only)
    want = _whole_then_selected(_layout(), links, only)
    assert got == want and list(got) == list(want)


@pytest.mark.parametrize("only", [[], ["b"], ["a"], ["nothing/*"]])
@pytest.mark.parametrize("s1_materials", [{}, {"a": H0}])
def test_a_malformed_product_pattern_in_a_link_is_refused_whatever_is_selected(
    only: list[str], s1_materials: dict[str, dict[str, str]]
) -> None:
    links = {
        "s0": LinkData("s0", [], {}, {"a": H0}, {}, {}),
        "s1": LinkData("s1", [], s1_materials, {"b": H0}, {}, {"patterns": {"products": ["["]}}),
    }
    with pytest.raises(PatternError):
        expected_products(_layout(), links, only)
