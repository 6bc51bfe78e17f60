"""Phase 6: artifact rules, with in-toto's semantics, evaluated on whole sets of paths.

Each rule does what in-toto's `verifylib.verify_*_rule` does (the same fnmatch patterns, the
same prefix handling, digests compared as whole dicts), but its pattern is compiled once and
matched over the queue at C speed (`filter`), and the consumed set is built with set lookups:
in-toto's per-artifact Python loop dominated verification at 100k artifacts. A differential
test (tests/unit/test_rules_sets.py) checks every verb against in-toto's own functions.
We also learn which rule failed and for which artifacts, and explain a MATCH failure with the
digest the other step recorded (expected) against the one this step recorded (actual).
"""

from __future__ import annotations

import fnmatch
import functools
import itertools
import operator
import os
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from provenance.links import ArtifactMap, membership, shas_of
from provenance.verification.result import Failure

MAX_LISTED = 20


@functools.lru_cache(maxsize=512)
def _matcher(pattern: str) -> Callable[[str], Any]:
    """What `fnmatch.filter` matches with on POSIX (normcase is the identity there)."""
    return re.compile(fnmatch.translate(pattern)).match


def filter_paths(paths: Iterable[str], pattern: str) -> list[str]:
    """`fnmatch.filter(paths, pattern)`, the pattern compiled once and matched in C."""
    if pattern == "*":  # fnmatch's `*` matches every string, '/' and the empty one included
        return list(paths)
    return list(filter(_matcher(pattern), paths))


def _join(prefix: str, path: str) -> str:
    return os.path.join(prefix, path).replace("\\", "/")  # as in-toto builds prefixed paths


def match_rule(
    data: Mapping[str, Any],
    queue: Iterable[str],
    source: Mapping[str, Any],
    links: Mapping[str, Any],
) -> set[str]:
    """in-toto's MATCH: queued artifacts whose digests equal the destination step's."""
    dest_link = links.get(data["dest_name"])
    if not dest_link:
        return set()
    dest = getattr(dest_link, data["dest_type"])
    src_prefix, dest_prefix = data["source_prefix"], data["dest_prefix"]
    if not src_prefix and not dest_prefix:
        hit = filter_paths(queue, data["pattern"])
        if dest is source:  # one section shared by both links (parsed once): all equal
            return set(hit)
        if isinstance(source, ArtifactMap) and isinstance(dest, ArtifactMap):
            # plain sections: the sha256 strings are the whole digest dicts
            same = map(operator.eq, shas_of(dest, hit), shas_of(source, hit))
        else:  # digest dicts compared pairwise in C: dest.get(p) == source[p] for every hit
            same = map(operator.eq, map(dest.get, hit), map(source.__getitem__, hit))
        return set(itertools.compress(hit, same))
    if src_prefix:
        norm = _join(src_prefix, "")
        queue = [p[len(norm) :] for p in queue if p.startswith(norm)]
    consumed = set()
    for path in filter_paths(queue, data["pattern"]):
        full_source = _join(src_prefix, path) if src_prefix else path
        full_dest = _join(dest_prefix, path) if dest_prefix else path
        if dest.get(full_dest) == source[full_source]:
            consumed.add(full_source)
    return consumed


def _evaluate(
    item: Any, kind: str, rules: list[list[str]], links: dict[str, Any]
) -> Failure | None:
    from in_toto import rulelib

    link = links[item.name]
    materials, products = link.materials, link.products
    in_materials, in_products = membership(materials), membership(products)
    artifacts = getattr(link, kind)
    # The queue keeps the link's order (a set's hash order makes every lookup below a cache
    # miss at 100k artifacts); consumed paths are dropped after each rule, as in in-toto.
    queue: list[str] = list(artifacts)
    for rule in rules:
        data = rulelib.unpack_rule(rule)
        verb, pattern = data["rule_type"], data["pattern"]
        consumed: set[str] = set()
        if verb == "match":
            consumed = match_rule(data, queue, artifacts, links)
        elif verb == "create":
            hit = filter_paths(queue, pattern)
            consumed = set(itertools.filterfalse(in_materials, filter(in_products, hit)))
        elif verb == "delete":
            hit = filter_paths(queue, pattern)
            consumed = set(itertools.filterfalse(in_products, filter(in_materials, hit)))
        elif verb == "modify":
            consumed = {
                p
                for p in filter_paths(queue, pattern)
                if p in materials and p in products and materials[p] != products[p]
            }
        elif verb == "allow":
            consumed = set(filter_paths(queue, pattern))
        elif verb == "disallow":
            hit = sorted(filter_paths(queue, pattern))
            if hit:
                return _explain_disallow(item.name, kind, rule, rules, hit, link, links)
        elif verb == "require" and pattern not in queue:
            return Failure(
                "rules",
                f"step '{item.name}': '{' '.join(rule)}' did not find '{pattern}' among its {kind}",
                step=item.name,
                rule=" ".join(rule),
                artifact=pattern,
            )
        if len(consumed) >= len(queue) and consumed.issuperset(queue):  # often all of it
            queue = []
        elif consumed:
            queue = list(itertools.filterfalse(consumed.__contains__, queue))
    return None


def _explain_disallow(
    step: str,
    kind: str,
    rule: list[str],
    rules: list[list[str]],
    hit: list[str],
    link: Any,
    links: dict[str, Any],
) -> Failure:
    """Say why each disallowed artifact was not accepted, using the MATCH rules before it."""
    from in_toto import rulelib

    before = rules[: rules.index(rule)]
    matches = [(" ".join(r), rulelib.unpack_rule(r)) for r in before if r[0].upper() == "MATCH"]
    details: list[str] = []
    first_expected = first_actual = None
    for path in hit[:MAX_LISTED]:
        actual = getattr(link, kind)[path].get("sha256")
        reason = f"'{path}' is not allowed by any rule before it"
        for text, m in matches:
            prefix = (m["source_prefix"].rstrip("/") + "/") if m["source_prefix"] else ""
            if not path.startswith(prefix) or not fnmatch.fnmatch(
                path[len(prefix) :], m["pattern"]
            ):
                continue
            dest_prefix = (m["dest_prefix"].rstrip("/") + "/") if m["dest_prefix"] else ""
            dest_path = dest_prefix + path[len(prefix) :]
            dest = links.get(m["dest_name"])
            dest_art = getattr(dest, m["dest_type"], {}).get(dest_path) if dest else None
            if dest_art is None:
                reason = (
                    f"'{path}' is not among the {m['dest_type']} of step "
                    f"'{m['dest_name']}' (planted or renamed), so '{text}' did not accept it"
                )
            else:
                expected = dest_art.get("sha256")
                reason = (
                    f"hash mismatch for '{path}': expected {expected} ({m['dest_type']} of "
                    f"'{m['dest_name']}'), actual {actual} ({kind} of '{step}'), so "
                    f"'{text}' did not accept it"
                )
                if first_expected is None:
                    first_expected, first_actual = expected, actual
            break
        details.append(reason)
    if len(hit) > MAX_LISTED:
        details.append(f"... and {len(hit) - MAX_LISTED} more")
    return Failure(
        "rules",
        f"step '{step}': {kind} rule '{' '.join(rule)}' rejected {len(hit)} "
        f"artifact(s): {details[0]}",
        step=step,
        rule=" ".join(rule),
        artifact=hit[0],
        expected=first_expected,
        actual=first_actual,
        details=tuple(details),
    )


def check_rules(items: Any, links: dict[str, Any]) -> list[Failure]:
    """Material and product rules of each step or inspection that has a link."""
    failures = []
    for item in items:
        if item.name not in links:
            continue
        for kind in ("materials", "products"):
            failure = _evaluate(item, kind, getattr(item, f"expected_{kind}"), links)
            if failure:
                failures.append(failure)
    return failures
