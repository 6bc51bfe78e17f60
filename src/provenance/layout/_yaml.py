"""Load a layout YAML strictly: unknown keys, wrong types and dangling names are errors with a line.

PyYAML's composer gives nodes with positions; we walk them ourselves so every message can say
`layouts/train.yaml:14: ...`. Duplicate keys (which PyYAML silently collapses) and aliases
(exponential expansion) are refused.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from typing import Any

import yaml

from provenance._bounded import read_bounded
from provenance.errors import InputError, LayoutError
from provenance.layout._model import (
    RULE_VERBS,
    InspectionDef,
    LayoutSpec,
    ModelDecl,
    Rule,
    StepDef,
)

MAX_YAML_BYTES = 1 << 20
_DURATION = re.compile(r"^(\d+)\s*([dwy])$")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,127}$")
_CONSTRUCTOR = yaml.SafeLoader("")  # only its constructor is used, on already-composed nodes


class _Ctx:
    def __init__(self, path: str) -> None:
        self.path = path

    def fail(self, node: yaml.Node | None, message: str) -> LayoutError:
        line = node.start_mark.line + 1 if node is not None else None
        return LayoutError(self.path, message, line)

    def mapping(
        self,
        node: yaml.Node,
        what: str,
        allowed: set[str],
        required: frozenset[str] | set[str] = frozenset(),
    ) -> dict[str, tuple[yaml.Node, yaml.Node]]:
        if not isinstance(node, yaml.MappingNode):
            raise self.fail(node, f"{what} must be a mapping")
        out: dict[str, tuple[yaml.Node, yaml.Node]] = {}
        for knode, vnode in node.value:
            key = self.string(knode, f"a key in {what}")
            if key in out:
                raise self.fail(knode, f"duplicate key '{key}' in {what}")
            if key not in allowed:
                expected = ", ".join(sorted(allowed))
                raise self.fail(
                    knode, f"unknown key '{key}' in {what} (expected one of: {expected})"
                )
            out[key] = (knode, vnode)
        for key in sorted(required - out.keys()):
            raise self.fail(node, f"{what} is missing required key '{key}'")
        return out

    def sequence(self, node: yaml.Node, what: str) -> list[yaml.Node]:
        if not isinstance(node, yaml.SequenceNode):
            raise self.fail(node, f"{what} must be a list")
        return list(node.value)

    def scalar(self, node: yaml.Node, what: str) -> Any:
        if not isinstance(node, yaml.ScalarNode):
            raise self.fail(node, f"{what} must be a single value")
        return _CONSTRUCTOR.construct_object(node, deep=True)

    def string(self, node: yaml.Node, what: str) -> str:
        value = self.scalar(node, what)
        if not isinstance(value, str) or not value:
            raise self.fail(node, f"{what} must be a non-empty string, got {_kind(value)}")
        return value

    def strings(self, node: yaml.Node, what: str) -> tuple[str, ...]:
        if isinstance(node, yaml.ScalarNode):
            return tuple(self.string(node, what).split())
        return tuple(self.string(n, f"an item of {what}") for n in self.sequence(node, what))


def _kind(value: Any) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {value!r}"[:60]


def _read(path: str) -> str:
    data = read_bounded(path, MAX_YAML_BYTES, "layout", LayoutError)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise LayoutError(path, "not UTF-8 text") from None


def load_yaml(path: str) -> LayoutSpec:
    """Parse and validate `path`; public key files are resolved relative to it."""
    text = _read(path)
    ctx = _Ctx(path)
    try:
        for event in yaml.parse(text, Loader=yaml.SafeLoader):
            if isinstance(event, yaml.AliasEvent):
                line = event.start_mark.line + 1 if event.start_mark else None
                raise LayoutError(path, "YAML aliases are not allowed", line)
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise LayoutError(path, f"invalid YAML: {exc.problem}", line) from None
    except yaml.YAMLError as exc:
        raise LayoutError(path, f"invalid YAML: {exc}") from None
    if root is None:
        raise LayoutError(path, "empty layout")
    top = ctx.mapping(
        root,
        "the layout",
        {"expires", "functionaries", "steps", "inspections", "readme", "model"},
        {"expires", "functionaries", "steps"},
    )
    lines: dict[str, int] = {"expires": top["expires"][0].start_mark.line + 1}
    expires = _expires(ctx, top["expires"][1])
    functionaries = _functionaries(ctx, top["functionaries"][1], os.path.dirname(path), lines)
    steps = [_step(ctx, n) for n in ctx.sequence(top["steps"][1], "steps")]
    if not steps:
        raise ctx.fail(top["steps"][1], "steps must list at least one step")
    inspections = []
    if "inspections" in top:
        inspections = [
            _inspection(ctx, n) for n in ctx.sequence(top["inspections"][1], "inspections")
        ]
    readme = ctx.string(top["readme"][1], "readme") if "readme" in top else ""
    _cross_check(ctx, steps, inspections, functionaries, top)
    model = _model(ctx, top["model"][1], steps) if "model" in top else None
    return LayoutSpec(path, expires, functionaries, steps, inspections, readme, lines, model)


def _model(ctx: _Ctx, node: yaml.Node, steps: list[StepDef]) -> ModelDecl:
    """`model: {step: train, products: "models/*"}`: the deliverable the gate promotes."""
    from provenance.hashing import compile_patterns

    f = ctx.mapping(node, "model", {"step", "products"}, {"step", "products"})
    step = _name(ctx, f["step"][1], "model step")
    if step not in {s.name for s in steps}:
        raise ctx.fail(f["step"][1], f"model names unknown step '{step}'")
    products = ctx.string(f["products"][1], "model products")
    try:
        compile_patterns([products])
    except InputError as exc:
        raise ctx.fail(f["products"][1], f"model products: {exc}") from None
    return ModelDecl(step, products, node.start_mark.line + 1)


def _expires(ctx: _Ctx, node: yaml.Node) -> dt.datetime:
    value = ctx.scalar(node, "expires")
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    if isinstance(value, dt.datetime):
        return value if value.tzinfo else value.replace(tzinfo=dt.timezone.utc)
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.timezone.utc)
    if isinstance(value, str) and (m := _DURATION.match(value.strip())):
        days = int(m.group(1)) * {"d": 1, "w": 7, "y": 365}[m.group(2)]
        if days < 1:
            raise ctx.fail(node, "expires duration must be at least 1d")
        return now + dt.timedelta(days=days)
    raise ctx.fail(
        node, f"expires must be a date (2027-06-30) or a duration (180d), got {_kind(value)}"
    )


def _functionaries(ctx: _Ctx, node: yaml.Node, base: str, lines: dict[str, int]) -> dict[str, Any]:
    from provenance.signing.keys import load_public_key

    if not isinstance(node, yaml.MappingNode) or not node.value:
        raise ctx.fail(node, "functionaries must map names to public key files")
    out: dict[str, Any] = {}
    for knode, vnode in node.value:
        name = ctx.string(knode, "a functionary name")
        if name in out:
            raise ctx.fail(knode, f"duplicate functionary '{name}'")
        lines[f"functionaries.{name}"] = knode.start_mark.line + 1
        if isinstance(vnode, yaml.MappingNode):
            out[name] = _inline_key(ctx, vnode, name)
            continue
        rel = ctx.string(vnode, f"the key of functionary '{name}'")
        key_path = os.path.normpath(os.path.join(base, rel))
        try:
            out[name] = load_public_key(key_path)
        except InputError as exc:
            raise ctx.fail(vnode, f"functionary '{name}': {exc}") from None
    return out


def _inline_key(ctx: _Ctx, node: yaml.MappingNode, name: str) -> Any:
    """A securesystemslib key written inline; its keyid is always computed, never trusted."""
    from securesystemslib.signer import Key
    from securesystemslib.signer._utils import compute_default_keyid

    fields = ctx.mapping(
        node,
        f"the key of '{name}'",
        {"keytype", "scheme", "keyval"},
        {"keytype", "scheme", "keyval"},
    )
    data = _CONSTRUCTOR.construct_object(node, deep=True)
    try:
        keyid = compute_default_keyid(data["keytype"], data["scheme"], data["keyval"])
        return Key.from_dict(keyid, dict(data))
    except (ValueError, KeyError, TypeError) as exc:
        raise ctx.fail(fields["keyval"][1], f"invalid key for '{name}': {exc}") from None


def _name(ctx: _Ctx, node: yaml.Node, what: str) -> str:
    name = ctx.string(node, what)
    if not _NAME.match(name):
        raise ctx.fail(node, f"{what} '{name}' may hold letters, digits, '_', '.', '-' (max 128)")
    return name


def _rules(ctx: _Ctx, node: yaml.Node, what: str) -> tuple[Rule, ...]:
    rules = []
    for rnode in ctx.sequence(node, what):
        if not isinstance(rnode, yaml.MappingNode):
            raise ctx.fail(rnode, f"a rule in {what} must be a mapping like 'allow: PATTERN'")
        keys = {ctx.string(k, "a rule key") for k, _ in rnode.value}
        verbs = keys & set(RULE_VERBS)
        if len(verbs) != 1:
            raise ctx.fail(rnode, f"a rule in {what} needs exactly one of: {', '.join(RULE_VERBS)}")
        verb = verbs.pop()
        allowed = {verb} | ({"from", "of", "in", "with"} if verb == "match" else set())
        fields = ctx.mapping(
            rnode,
            f"the '{verb}' rule in {what}",
            allowed,
            {verb, "from"} if verb == "match" else {verb},
        )
        pattern = ctx.string(fields[verb][1], f"the pattern of '{verb}'")
        line = rnode.start_mark.line + 1
        if verb != "match":
            rules.append(Rule(verb, pattern, line))
            continue
        of = ctx.string(fields["of"][1], "of") if "of" in fields else "products"
        if of not in ("products", "materials"):
            raise ctx.fail(fields["of"][1], f"'of' must be 'products' or 'materials', got '{of}'")
        rules.append(
            Rule(
                "match",
                pattern,
                line,
                from_step=_name(ctx, fields["from"][1], "from"),
                of=of,
                in_prefix=ctx.string(fields["in"][1], "in") if "in" in fields else None,
                with_prefix=ctx.string(fields["with"][1], "with") if "with" in fields else None,
            )
        )
    return tuple(rules)


def _threshold(ctx: _Ctx, node: yaml.Node) -> int:
    value = ctx.scalar(node, "threshold")
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ctx.fail(node, f"threshold must be an integer >= 1, got {_kind(value)}")
    return value


def _step(ctx: _Ctx, node: yaml.Node) -> StepDef:
    f = ctx.mapping(
        node,
        "a step",
        {"name", "functionaries", "threshold", "materials", "products", "command"},
        {"name", "functionaries"},
    )
    name = _name(ctx, f["name"][1], "step name")
    where = f"step '{name}'"

    def opt(k: str) -> tuple[Rule, ...]:
        return _rules(ctx, f[k][1], f"{k} of {where}") if k in f else ()

    return StepDef(
        name=name,
        functionaries=ctx.strings(f["functionaries"][1], f"functionaries of {where}"),
        threshold=_threshold(ctx, f["threshold"][1]) if "threshold" in f else 1,
        materials=opt("materials"),
        products=opt("products"),
        command=ctx.strings(f["command"][1], f"command of {where}") if "command" in f else (),
        line=node.start_mark.line + 1,
    )


def _inspection(ctx: _Ctx, node: yaml.Node) -> InspectionDef:
    f = ctx.mapping(
        node, "an inspection", {"name", "run", "materials", "products"}, {"name", "run"}
    )
    name = _name(ctx, f["name"][1], "inspection name")
    where = f"inspection '{name}'"
    return InspectionDef(
        name=name,
        run=ctx.strings(f["run"][1], f"run of {where}"),
        materials=_rules(ctx, f["materials"][1], f"materials of {where}")
        if "materials" in f
        else (),
        products=_rules(ctx, f["products"][1], f"products of {where}") if "products" in f else (),
        line=node.start_mark.line + 1,
    )


def _cross_check(
    ctx: _Ctx,
    steps: list[StepDef],
    inspections: list[InspectionDef],
    functionaries: dict[str, Any],
    top: dict[str, tuple[yaml.Node, yaml.Node]],
) -> None:
    seen: set[str] = set()
    items: list[StepDef | InspectionDef] = [*steps, *inspections]
    for item in items:
        if item.name in seen:
            raise LayoutError(
                ctx.path, f"duplicate step or inspection name '{item.name}'", item.line
            )
        seen.add(item.name)
    for step in steps:
        if not step.functionaries:
            raise LayoutError(ctx.path, f"step '{step.name}' has no functionaries", step.line)
        for fname in step.functionaries:
            if fname not in functionaries:
                raise LayoutError(
                    ctx.path,
                    f"step '{step.name}' names unknown functionary '{fname}' "
                    f"(defined: {', '.join(sorted(functionaries))})",
                    step.line,
                )
        if step.threshold > len(set(step.functionaries)):
            raise LayoutError(
                ctx.path,
                f"step '{step.name}' threshold {step.threshold} exceeds its "
                f"{len(set(step.functionaries))} functionaries",
                step.line,
            )
    for item in items:
        for rule in (*item.materials, *item.products):
            if rule.verb == "match" and rule.from_step not in seen:
                raise LayoutError(
                    ctx.path,
                    f"'{item.name}': match rule names unknown step '{rule.from_step}'",
                    rule.line,
                )
