"""Phase 6: artifact rules, evaluated with in-toto's own rule functions for identical semantics.

We drive in-toto's per-rule functions ourselves (rather than `verify_item_rules`) to learn which
rule failed and for which artifacts, and to explain a MATCH failure with the digest the other step
recorded (expected) against the one this step recorded (actual).
"""

from __future__ import annotations

import fnmatch
from typing import Any

from provenance.verification.result import Failure

MAX_LISTED = 20


def _evaluate(
    item: Any, kind: str, rules: list[list[str]], links: dict[str, Any]
) -> Failure | None:
    from in_toto import rulelib, verifylib
    from in_toto.exceptions import RuleVerificationError

    link = links[item.name]
    materials, products = link.materials, link.products
    material_paths, product_paths = set(materials), set(products)  # built once, not per rule
    queue = set(getattr(link, kind))
    for rule in rules:
        data = rulelib.unpack_rule(rule)
        verb, pattern = data["rule_type"], data["pattern"]
        consumed: set[str] = set()
        try:
            if verb == "match":
                consumed = verifylib.verify_match_rule(data, queue, getattr(link, kind), links)
            elif verb == "create":
                consumed = verifylib.verify_create_rule(
                    pattern, queue, material_paths, product_paths
                )
            elif verb == "delete":
                consumed = verifylib.verify_delete_rule(
                    pattern, queue, material_paths, product_paths
                )
            elif verb == "modify":
                consumed = verifylib.verify_modify_rule(pattern, queue, materials, products)
            elif verb == "allow":
                consumed = verifylib.verify_allow_rule(pattern, queue)
            elif verb == "disallow":
                hit = sorted(fnmatch.filter(queue, pattern))
                if hit:
                    return _explain_disallow(item.name, kind, rule, rules, hit, link, links)
            elif verb == "require" and pattern not in queue:
                return Failure(
                    "rules",
                    f"step '{item.name}': '{' '.join(rule)}' did not find "
                    f"'{pattern}' among its {kind}",
                    step=item.name,
                    rule=" ".join(rule),
                    artifact=pattern,
                )
        except RuleVerificationError as exc:  # pragma: no cover - the branches above pre-empt it
            return Failure("rules", f"step '{item.name}': {exc}", step=item.name)
        queue -= consumed
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
