"""LayoutSpec -> in-toto Layout, closing every rule list so nothing can fall through.

After each MATCH the compiler adds DISALLOW of the same pattern: an artifact whose digest does
not match can then never be accepted by a later ALLOW (in-toto itself passes a tampered model with
`MATCH model.bin WITH PRODUCTS FROM train` followed by `ALLOW *`). Every list ends in DISALLOW *.
"""

from __future__ import annotations

from typing import Any

from provenance.layout._model import LayoutSpec, Rule
from provenance.layout._policy import compiled_readme


def close_rules(rules: tuple[Rule, ...]) -> list[list[str]]:
    out: list[list[str]] = []
    for rule in rules:
        out.append(rule.to_in_toto())
        if rule.verb == "match":
            out.append(["DISALLOW", rule.full_pattern])
    if not out or out[-1] != ["DISALLOW", "*"]:
        out.append(["DISALLOW", "*"])
    return out


def key_dict(key: Any) -> dict[str, Any]:
    data: dict[str, Any] = key.to_dict()
    data["keyid"] = key.keyid
    return data


def compile_layout(spec: LayoutSpec) -> Any:
    """Build the in_toto.models.layout.Layout for `spec`."""
    from in_toto.models.layout import Inspection, Layout, Step

    layout = Layout()
    assert spec.expires is not None  # the loader requires it
    layout.expires = spec.expires.strftime("%Y-%m-%dT%H:%M:%SZ")
    names = {name: key.keyid for name, key in spec.functionaries.items()}
    # in-toto has no fields for the model, thresholds, functionary names or run-id opt-ins: they
    # ride in the signed readme as declarations (layout/_policy.py writes and reads them).
    layout.readme = compiled_readme(spec)
    for key in spec.functionaries.values():
        layout.keys[key.keyid] = key_dict(key)
    for s in spec.steps:
        step = Step(name=s.name)
        step.pubkeys = sorted({names[f] for f in s.functionaries})
        step.threshold = s.threshold
        step.expected_command = list(s.command)
        step.expected_materials = close_rules(s.materials)
        step.expected_products = close_rules(s.products)
        layout.steps.append(step)
    for i in spec.inspections:
        insp = Inspection(name=i.name)
        insp.run = list(i.run)
        insp.expected_materials = close_rules(i.materials)
        insp.expected_products = close_rules(i.products)
        layout.inspect.append(insp)
    layout.validate()
    return layout
