"""Lint a layout YAML for the ways a supply-chain policy silently stops protecting anything."""

from __future__ import annotations

import datetime as dt
import fnmatch
from dataclasses import asdict, dataclass

from provenance.layout._model import LayoutSpec, Rule

MAX_VALIDITY = dt.timedelta(days=366)
_EVERYTHING = {"*", "**", "**/*", "*/**"}


@dataclass(frozen=True)
class Finding:
    """One lint finding: severity, message, and the line of the layout it is about."""

    severity: str  # "error" | "warning"
    code: str
    message: str
    line: int | None = None

    def render(self, path: str) -> str:
        """The finding as one line, `PATH[:LINE]: severity: message`."""
        where = f"{path}:{self.line}" if self.line else path
        return f"{where}: {self.severity}: {self.message} [{self.code}]"

    def to_dict(self) -> dict[str, object]:
        """The finding as JSON."""
        return asdict(self)


def _covers(general: str, specific: str) -> bool:
    """True when every path `specific` can match is also matched by `general` (conservative)."""
    return general in _EVERYTHING or general == specific or fnmatch.fnmatchcase(specific, general)


def _check_rules(
    item: str, kind: str, rules: tuple[Rule, ...], out: list[Finding], inspection: bool = False
) -> None:
    where = f"{kind} of '{item}'"
    # An inspection is judged by its command's exit status; allowing everything it sees is only
    # fail-open when a match rule in the same list could be bypassed by it.
    lenient = inspection and not any(r.verb == "match" for r in rules)
    for i, rule in enumerate(rules):
        if rule.verb == "allow" and rule.pattern in _EVERYTHING:
            out.append(
                Finding(
                    "warning" if lenient else "error",
                    "fail-open",
                    f"{where}: 'allow: {rule.pattern}' accepts any "
                    "artifact, so nothing after it is enforced",
                    rule.line,
                )
            )
        # Rules other than match consume (or reject) every artifact their pattern selects, so a
        # later rule whose pattern they cover never sees an artifact.
        shadow = next(
            (
                p
                for p in rules[:i]
                if p.verb != "match"
                and p.verb != "require"
                and _covers(p.pattern, rule.full_pattern)
            ),
            None,
        )
        if shadow is None:
            continue
        fail_open = rule.verb == "match" and shadow.verb == "allow"
        out.append(
            Finding(
                "error" if fail_open else "warning",
                "fail-open" if fail_open else "unreachable",
                f"{where}: '{rule}' can never match: '{shadow}' (line {shadow.line}) takes those "
                "artifacts first" + (", so a tampered artifact is accepted" if fail_open else ""),
                rule.line,
            )
        )


def lint(spec: LayoutSpec, *, now: dt.datetime | None = None) -> list[Finding]:
    """Every fail-open rule set, missing restriction and expired or near-expiry date in `spec`."""
    now = now or dt.datetime.now(dt.timezone.utc)
    out: list[Finding] = []
    line = spec.lines.get("expires")
    if spec.expires is None:
        out.append(Finding("error", "expiry", "no expiry date", line))
    elif spec.expires <= now:
        out.append(Finding("error", "expiry", f"expired on {spec.expires:%Y-%m-%d}", line))
    elif spec.expires - now > MAX_VALIDITY:
        out.append(
            Finding(
                "error",
                "expiry",
                f"expires {spec.expires:%Y-%m-%d}, more than a year "
                "ahead; rotate layouts at least yearly",
                line,
            )
        )
    used = {f for s in spec.steps for f in s.functionaries}
    for name in sorted(set(spec.functionaries) - used):
        out.append(
            Finding(
                "warning",
                "unused-key",
                f"functionary '{name}' is not used by any step",
                spec.lines.get(f"functionaries.{name}"),
            )
        )
    order = {s.name: i for i, s in enumerate(spec.steps)}
    for idx, step in enumerate(spec.steps):
        _check_rules(step.name, "materials", step.materials, out)
        _check_rules(step.name, "products", step.products, out)
        for rule in (*step.materials, *step.products):
            if rule.verb == "match" and order.get(str(rule.from_step), -1) >= idx:
                out.append(
                    Finding(
                        "error",
                        "order",
                        f"step '{step.name}' matches against "
                        f"'{rule.from_step}', which does not run before it",
                        rule.line,
                    )
                )
        if idx > 0 and not any(r.verb == "match" for r in step.materials):
            out.append(
                Finding(
                    "warning",
                    "unlinked",
                    f"step '{step.name}' has no 'match' material "
                    "rule: nothing ties its inputs to earlier steps",
                    step.line,
                )
            )
        if step.run_id_optional:
            out.append(
                Finding(
                    "warning",
                    "run-id-optional",
                    f"step '{step.name}' accepts links without a pipeline run id (run_id: "
                    "optional): they cannot be tied to the pipeline run, so a link of an "
                    "earlier run is accepted too; record the step with `provenance run` instead",
                    step.line,
                )
            )
        if not step.products and idx == len(spec.steps) - 1:
            out.append(
                Finding(
                    "warning",
                    "no-products",
                    f"final step '{step.name}' declares no "
                    "products: the delivered files are not described",
                    step.line,
                )
            )
    for insp in spec.inspections:
        _check_rules(insp.name, "materials", insp.materials, out, inspection=True)
        _check_rules(insp.name, "products", insp.products, out, inspection=True)
    _check_model(spec, out)
    _check_thresholds(spec, out)
    return sorted(out, key=lambda f: (f.line or 0, f.code))


def _check_model(spec: LayoutSpec, out: list[Finding]) -> None:
    """The gate can only promote what the layout names as the model."""
    model = spec.model
    if model is None:
        out.append(
            Finding(
                "warning",
                "no-model",
                "no 'model:' declaration: `provenance promote` refuses this layout "
                '(add e.g. model: {step: train, products: "models/*"})',
            )
        )
        return
    step = next(s for s in spec.steps if s.name == model.step)
    creators = [r for r in step.products if r.verb in ("create", "modify", "allow", "match")]
    if not any(_covers(r.full_pattern, model.products) for r in creators):
        out.append(
            Finding(
                "error",
                "model-not-produced",
                f"model products '{model.products}' are not covered by any product rule of "
                f"step '{model.step}', so no verified link can ever contain them",
                model.line,
            )
        )


def _check_thresholds(spec: LayoutSpec, out: list[Finding]) -> None:
    """A threshold can only be checked on a file its step's verified link records as a product."""
    steps = {s.name: s for s in spec.steps}
    reported: set[tuple[str, str]] = set()
    for t in spec.thresholds:
        step = steps.get(t.step)
        if step is None or (t.step, t.file) in reported:
            continue
        creators = [r for r in step.products if r.verb in ("create", "modify", "allow", "match")]
        if not any(_covers(r.full_pattern, t.file) for r in creators):
            reported.add((t.step, t.file))
            out.append(
                Finding(
                    "error",
                    "threshold-not-produced",
                    f"threshold file '{t.file}' is not covered by any product rule of step "
                    f"'{t.step}', so its metrics can never be verified",
                    t.line,
                )
            )
