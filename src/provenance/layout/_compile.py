"""LayoutSpec -> in-toto Layout, closing every rule list so nothing can fall through.

After each MATCH the compiler adds DISALLOW of the same pattern: an artifact whose digest does
not match can then never be accepted by a later ALLOW (in-toto itself passes a tampered model with
`MATCH model.bin WITH PRODUCTS FROM train` followed by `ALLOW *`). Every list ends in DISALLOW *.
"""

from __future__ import annotations

import json
from typing import Any

from provenance.errors import LayoutError
from provenance.layout._model import LayoutSpec, ModelDecl, Rule, Threshold

FUNCTIONARIES_MARKER = "ml-provenance functionaries: "
# The model declaration rides in the signed readme too (in-toto has no field for it; upstream
# in-toto-verify ignores the readme, so links verify there unchanged).
MODEL_MARKER = "ml-provenance model: "
THRESHOLDS_MARKER = "ml-provenance thresholds: "
# Steps whose links may lack a pipeline run id (`run_id: optional`), e.g. upstream in-toto-run.
RUN_ID_OPTIONAL_MARKER = "ml-provenance run-id-optional: "


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
    # in-toto keeps only key ids; the names ride along in the readme so explanations can use them.
    layout.readme = (
        (spec.readme + "\n" if spec.readme else "")
        + FUNCTIONARIES_MARKER
        + json.dumps(names, sort_keys=True)
    )
    if spec.model is not None:
        layout.readme += "\n" + MODEL_MARKER + json.dumps(spec.model.to_dict(), sort_keys=True)
    if spec.thresholds:
        layout.readme += (
            "\n"
            + THRESHOLDS_MARKER
            + json.dumps([t.to_dict() for t in spec.thresholds], sort_keys=True, allow_nan=False)
        )
    optional = sorted(s.name for s in spec.steps if s.run_id_optional)
    if optional:
        layout.readme += "\n" + RUN_ID_OPTIONAL_MARKER + json.dumps(optional)
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


def _marker(readme: str, marker: str) -> Any:
    """The JSON value after `marker` in the (signed) readme, or None."""
    for line in readme.splitlines():
        if line.startswith(marker):
            try:
                return json.loads(line[len(marker) :])
            except (json.JSONDecodeError, RecursionError):
                return None
    return None


def functionary_names(readme: str) -> dict[str, str]:
    """keyid -> functionary name, from a layout compiled here (empty for foreign layouts)."""
    names = _marker(readme, FUNCTIONARIES_MARKER)
    return {str(v): str(k) for k, v in names.items()} if isinstance(names, dict) else {}


def model_declaration(readme: str, step_names: set[str]) -> ModelDecl | None:
    """The signed layout's model declaration; None when it has none or it is malformed."""
    data = _marker(readme, MODEL_MARKER)
    if not isinstance(data, dict) or set(data) != {"step", "products"}:
        return None
    step, products = data["step"], data["products"]
    if not isinstance(step, str) or not isinstance(products, str) or step not in step_names:
        return None
    return ModelDecl(step, products)


def threshold_declarations(readme: str, step_names: set[str]) -> tuple[Threshold, ...]:
    """The signed layout's metric thresholds (empty when it declares none).

    Unlike a missing model, a malformed declaration must not read as "no thresholds": that would
    drop the owner's policy silently. It raises LayoutError, which verification reports as a
    failure.
    """
    lines = [ln for ln in readme.splitlines() if ln.startswith(THRESHOLDS_MARKER)]
    if not lines:
        return ()
    problem = "the signed layout's thresholds declaration is malformed"
    if len(lines) > 1:
        raise LayoutError(None, f"{problem}: it appears {len(lines)} times")
    try:
        data = json.loads(lines[0][len(THRESHOLDS_MARKER) :])
    except (json.JSONDecodeError, RecursionError):
        raise LayoutError(None, f"{problem}: not JSON") from None
    if not isinstance(data, list):
        raise LayoutError(None, f"{problem}: not a list")
    out = []
    for item in data:
        keys = {"step", "file", "metric", "op", "value"}
        if not isinstance(item, dict) or set(item) != keys:
            raise LayoutError(None, f"{problem}: an entry lacks or adds fields")
        if not all(isinstance(item[k], str) for k in ("step", "file", "metric", "op")):
            raise LayoutError(None, f"{problem}: step, file, metric and op must be strings")
        if item["step"] not in step_names:
            raise LayoutError(None, f"{problem}: unknown step '{item['step']}'")
        try:
            out.append(
                Threshold(item["step"], item["file"], item["metric"], item["op"], item["value"])
            )
        except ValueError as exc:
            raise LayoutError(None, f"{problem}: {exc}") from None
    return tuple(out)


def run_id_optional_steps(readme: str, step_names: set[str]) -> frozenset[str]:
    """The steps whose links the signed layout accepts without a pipeline run id.

    A malformed declaration raises LayoutError (reported as a failure): guessing either way
    would silently change what the owner signed.
    """
    lines = [ln for ln in readme.splitlines() if ln.startswith(RUN_ID_OPTIONAL_MARKER)]
    if not lines:
        return frozenset()
    problem = "the signed layout's run-id-optional declaration is malformed"
    if len(lines) > 1:
        raise LayoutError(None, f"{problem}: it appears {len(lines)} times")
    try:
        data = json.loads(lines[0][len(RUN_ID_OPTIONAL_MARKER) :])
    except (json.JSONDecodeError, RecursionError):
        raise LayoutError(None, f"{problem}: not JSON") from None
    if not isinstance(data, list) or not all(isinstance(n, str) for n in data):
        raise LayoutError(None, f"{problem}: not a list of step names")
    unknown = sorted(set(data) - step_names)
    if unknown:
        raise LayoutError(None, f"{problem}: unknown step '{unknown[0]}'")
    return frozenset(data)
