"""The set-based rule evaluator (verification/_rules.py) decides exactly as in-toto does.

Random artifact lists, digests and rules (every verb, with and without MATCH prefixes, patterns
with `*`, `?` and classes) are judged by our evaluator and by in-toto's own functions
(`verifylib.verify_*_rule` per rule, `verify_item_rules` for a whole rule list): the consumed
paths of every rule and the pass/fail verdict of every list must be identical.
"""

from __future__ import annotations

import fnmatch
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from in_toto import rulelib, verifylib
from in_toto.exceptions import RuleVerificationError

from provenance.links import LinkData
from provenance.verification._rules import _evaluate, filter_paths, match_rule

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

NAMES = ["a", "b", "x.bin", "w.safetensors", "m.json", "a b", "ü"]
DIRS = ["", "data/", "data/raw/", "model/", "out/", "prefix/data/"]
PATHS = st.builds(lambda d, n: d + n, st.sampled_from(DIRS), st.sampled_from(NAMES))
DIGESTS = st.sampled_from([{"sha256": "0" * 64}, {"sha256": "1" * 64}, {"sha512": "2" * 128}])
ARTIFACTS = st.dictionaries(PATHS, DIGESTS, max_size=12)
PATTERNS = st.sampled_from(
    ["*", "data/*", "data/raw/*", "*.bin", "model/?.json", "[am]*", "data", "x.bin", "*/a*"]
)
PREFIXES = st.sampled_from(["", "data", "data/", "prefix", "prefix/data/", "model"])


def _link(name: str, materials: dict[str, Any], products: dict[str, Any]) -> LinkData:
    return LinkData(name, [], materials, products, {}, {})


def _links(m: Any, p: Any, om: Any, op: Any, shared: str) -> dict[str, LinkData]:
    """The step's link and the other step's; with `shared`, one section of the other link is
    the very object of one of the step's (as parsing gives when their bytes are equal)."""
    if shared:
        mine, theirs = shared.split("-")
        section = {"materials": m, "products": p}[mine]
        om, op = (section, op) if theirs == "materials" else (om, section)
    return {"step": _link("step", m, p), "other": _link("other", om, op)}


# The step's link and the link of another step that MATCH rules point at ("missing" has none).
LINKS = st.builds(
    _links,
    ARTIFACTS,
    ARTIFACTS,
    ARTIFACTS,
    ARTIFACTS,
    st.sampled_from(["", "", "materials-products", "products-materials", "materials-materials"]),
)
KINDS = st.sampled_from(["materials", "products"])


@st.composite
def rules(draw: st.DrawFn) -> list[str]:
    verb = draw(st.sampled_from(["MATCH", "CREATE", "DELETE", "MODIFY", "ALLOW", "DISALLOW"]))
    pattern = draw(PATTERNS)
    if verb != "MATCH":
        return [verb, pattern]
    rule = ["MATCH", pattern]
    source = draw(PREFIXES)
    if source:
        rule += ["IN", source]
    rule += ["WITH", draw(st.sampled_from(["MATERIALS", "PRODUCTS"]))]
    dest = draw(PREFIXES)
    if dest:
        rule += ["IN", dest]
    return [*rule, "FROM", draw(st.sampled_from(["other", "missing"]))]


def _in_toto_consumed(
    data: dict[str, Any], queue: set[str], link: LinkData, kind: str, links: dict[str, Any]
) -> set[str]:
    verb, pattern = data["rule_type"], data["pattern"]
    materials, products = link.materials, link.products
    if verb == "match":
        return set(verifylib.verify_match_rule(data, queue, getattr(link, kind), links))
    if verb == "create":
        return set(verifylib.verify_create_rule(pattern, queue, set(materials), set(products)))
    if verb == "delete":
        return set(verifylib.verify_delete_rule(pattern, queue, set(materials), set(products)))
    if verb == "modify":
        return set(verifylib.verify_modify_rule(pattern, queue, materials, products))
    return set(verifylib.verify_allow_rule(pattern, queue))


@SETTINGS
@given(links=LINKS, rule=rules(), kind=KINDS)
def test_each_rule_consumes_exactly_what_in_toto_consumes(
    links: dict[str, Any], rule: list[str], kind: str
) -> None:
    link = links["step"]
    data = rulelib.unpack_rule(rule)
    if data["rule_type"] == "disallow":
        queue = list(getattr(link, kind))
        assert filter_paths(queue, data["pattern"]) == fnmatch.filter(queue, data["pattern"])
        return
    queue_set = set(getattr(link, kind))
    expected = _in_toto_consumed(data, set(queue_set), link, kind, links)
    if data["rule_type"] == "match":
        got = match_rule(data, list(getattr(link, kind)), getattr(link, kind), links)
    else:
        step = type("Item", (), {"name": "step"})()
        # One rule followed by a DISALLOW of everything: what it leaves is what it did not consume.
        failure = _evaluate(step, kind, [rule, ["DISALLOW", "*"]], links)
        left = _disallowed(failure) if failure else set()
        got = queue_set - left
    assert got == expected


def _disallowed(failure: Any) -> set[str]:
    """The artifacts a DISALLOW failure lists (all of them: the tests stay under the cap)."""
    return {d.split("'")[1] for d in failure.details}


@SETTINGS
@given(
    links=LINKS,
    rule_list=st.lists(rules(), max_size=5),
    closing=st.sampled_from([[], [["DISALLOW", "*"]], [["REQUIRE", "data/a"]]]),
    kind=KINDS,
)
def test_a_rule_list_passes_or_fails_exactly_as_in_toto_judges_it(
    links: dict[str, Any], rule_list: list[list[str]], closing: list[list[str]], kind: str
) -> None:
    rules_ = [*rule_list, *closing]
    try:
        verifylib.verify_item_rules("step", kind, rules_, links)
        upstream_ok = True
    except RuleVerificationError:
        upstream_ok = False
    step = type("Item", (), {"name": "step"})()
    assert (_evaluate(step, kind, rules_, links) is None) == upstream_ok


@pytest.mark.parametrize(
    ("pattern", "paths"),
    [
        ("data/*", ["data/a", "data/raw/b", "datax/c", "x/data/a"]),
        ("*", ["", "a", "d/a", "/a/", "a\nb", ".x"]),
        ("*.bin", ["a.bin", "d/a.bin", "a.binx", ".bin"]),
        ("[!a]*", ["a", "b", "ab", "ba"]),
        ("a?c", ["abc", "a/c", "ac", "abbc"]),
        ("data/a\nb", ["data/a\nb", "data/a"]),
    ],
)
def test_filter_paths_is_fnmatch_filter(pattern: str, paths: list[str]) -> None:
    assert filter_paths(paths, pattern) == fnmatch.filter(paths, pattern)


@SETTINGS
@given(artifacts=ARTIFACTS, pattern=PATTERNS, kind=KINDS, theirs=KINDS)
def test_match_against_the_same_section_object_consumes_what_in_toto_consumes(
    artifacts: dict[str, Any], pattern: str, kind: str, theirs: str
) -> None:
    """A step whose materials are the other step's products, parsed once into one object."""
    links = _links(artifacts, dict(artifacts), {}, {}, f"{kind}-{theirs}")
    if kind == "products":
        links = _links({}, artifacts, {}, {}, f"{kind}-{theirs}")
    rule = ["MATCH", pattern, "WITH", theirs.upper(), "FROM", "other"]
    data = rulelib.unpack_rule(rule)
    link = links["step"]
    expected = _in_toto_consumed(data, set(getattr(link, kind)), link, kind, links)
    assert getattr(links["other"], theirs) is getattr(link, kind)
    assert match_rule(data, list(getattr(link, kind)), getattr(link, kind), links) == expected
