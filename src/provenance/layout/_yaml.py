"""Load a layout YAML strictly: unknown keys, wrong types and dangling names are errors with a line.

PyYAML's composer gives nodes with positions; we walk them ourselves so every message can say
`layouts/train.yaml:14: ...`. Duplicate keys (which PyYAML silently collapses) and aliases
(exponential expansion) are refused. Untrusted text is bounded before it can cost time: size on
read, nesting depth and node count while composing (deep flow nesting makes PyYAML's scanner
quadratic), integer length before conversion, dates and offsets out of range.
"""

from __future__ import annotations

import datetime as dt
import math
import os
import re
from collections.abc import Callable
from typing import Any, TypeVar

import yaml

from provenance._fs import read_bounded
from provenance.errors import InputError, LayoutError
from provenance.layout._model import (
    METRIC_RE,
    RULE_VERBS,
    InspectionDef,
    LayoutSpec,
    ModelDecl,
    Rule,
    StepDef,
    Threshold,
    check_name,
)
from provenance.layout._policy import check_readme_text

MAX_YAML_BYTES = 1 << 20
MAX_DEPTH = 32  # a layout nests 6 levels
MAX_NODES = 20_000  # a 50-step layout has about 3000
MAX_INT_DIGITS = 19
_DURATION = re.compile(r"^(\d{1,6})\s*([dwy])$")
_INT_TAG = "tag:yaml.org,2002:int"
_REQUIREMENT = re.compile(r"^\s*(>=|<=|==|>|<)\s*([^\s]+)\s*$")
_NUMBER = re.compile(r"^[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?$")
T = TypeVar("T")


class _Loader(yaml.SafeLoader):
    """SafeLoader whose composer refuses aliases, deep nesting and huge documents as it goes."""

    def __init__(self, text: str, path: str) -> None:
        super().__init__(text)
        self._path, self._depth, self._nodes = path, 0, 0

    def _refuse(self, message: str) -> LayoutError:
        mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
        return LayoutError(self._path, message, mark.line + 1 if mark else None)

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        if self.check_event(yaml.AliasEvent):
            raise self._refuse("YAML aliases are not allowed")
        self._nodes += 1
        if self._nodes > MAX_NODES:
            raise self._refuse(f"more than {MAX_NODES} YAML nodes")
        if self._depth >= MAX_DEPTH:
            raise self._refuse(f"YAML nested deeper than {MAX_DEPTH} levels")
        self._depth += 1
        try:
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1


class _Ctx:
    def __init__(self, path: str) -> None:
        self.path = path
        # A fresh constructor per file: it caches every object it built, keyed by node.
        self.constructor = yaml.constructor.SafeConstructor()

    def construct(self, node: yaml.Node, what: str) -> Any:
        """The Python value of `node`; out-of-range values are errors, never exceptions."""
        for sub in _scalars(node):
            if (
                sub.tag == _INT_TAG
                and len(sub.value.lstrip("+-").replace("_", "")) > MAX_INT_DIGITS
            ):
                raise self.fail(sub, f"{what}: integer {sub.value[:20]}... is too large")
        try:
            return self.constructor.construct_object(node, deep=True)
        except (ValueError, OverflowError, TypeError, yaml.YAMLError) as exc:
            reason = str(exc).strip().splitlines()[-1][:120] if str(exc).strip() else ""
            raise self.fail(
                node, f"{what}: invalid value ({reason or type(exc).__name__})"
            ) from None

    def built(self, node: yaml.Node, make: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """`make(*args, **kwargs)`; a LayoutError of a self-validating type gets file and line."""
        try:
            return make(*args, **kwargs)
        except LayoutError as exc:
            if exc.path is not None:
                raise
            line = exc.line if exc.line is not None else node.start_mark.line + 1
            raise LayoutError(self.path, str(exc), line) from None

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
        return self.construct(node, what)

    def string(self, node: yaml.Node, what: str) -> str:
        value = self.scalar(node, what)
        if not isinstance(value, str) or not value:
            raise self.fail(node, f"{what} must be a non-empty string, got {_kind(value)}")
        return value

    def strings(self, node: yaml.Node, what: str) -> tuple[str, ...]:
        if isinstance(node, yaml.ScalarNode):
            return tuple(self.string(node, what).split())
        return tuple(self.string(n, f"an item of {what}") for n in self.sequence(node, what))


def _scalars(node: yaml.Node) -> list[yaml.ScalarNode]:
    out: list[yaml.ScalarNode] = []
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, yaml.ScalarNode):
            out.append(n)
        elif isinstance(n, yaml.SequenceNode):
            stack.extend(n.value)
        elif isinstance(n, yaml.MappingNode):
            stack.extend(x for pair in n.value for x in pair)
    return out


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
    loader: _Loader | None = None
    try:
        loader = _Loader(text, path)
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as exc:
        line = exc.problem_mark.line + 1 if exc.problem_mark else None
        raise LayoutError(path, f"invalid YAML: {exc.problem}", line) from None
    except yaml.YAMLError as exc:
        raise LayoutError(path, f"invalid YAML: {exc}") from None
    except RecursionError:  # not reached below MAX_DEPTH; kept so nothing escapes untyped
        raise LayoutError(path, f"YAML nested deeper than {MAX_DEPTH} levels") from None
    finally:
        if loader is not None:
            loader.dispose()
    if root is None:
        raise LayoutError(path, "empty layout")
    top = ctx.mapping(
        root,
        "the layout",
        {"expires", "functionaries", "steps", "inspections", "readme", "model", "thresholds"},
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
    readme = ""
    if "readme" in top:
        readme = ctx.string(top["readme"][1], "readme")
        lines["readme"] = top["readme"][0].start_mark.line + 1
        ctx.built(top["readme"][1], check_readme_text, readme)
    _cross_check(ctx, steps, inspections, functionaries, top)
    model = _model(ctx, top["model"][1], steps) if "model" in top else None
    thresholds = _thresholds(ctx, top["thresholds"][1], steps) if "thresholds" in top else ()
    return LayoutSpec(
        path, expires, functionaries, steps, inspections, readme, lines, model, thresholds
    )


def _model(ctx: _Ctx, node: yaml.Node, steps: list[StepDef]) -> ModelDecl:
    """`model: {step: train, products: "models/*"}`: the deliverable the gate promotes."""
    from provenance.hashing import objects

    f = ctx.mapping(node, "model", {"step", "products"}, {"step", "products"})
    step = _name(ctx, f["step"][1], "model step")
    if step not in {s.name for s in steps}:
        raise ctx.fail(f["step"][1], f"model names unknown step '{step}'")
    products = ctx.string(f["products"][1], "model products")
    try:
        objects.compile_any(products)  # local, or s3:// (hashing/_objects.py)
    except InputError as exc:
        raise ctx.fail(f["products"][1], f"model products: {exc}") from None
    return ctx.built(node, ModelDecl, step, products, node.start_mark.line + 1)


def _thresholds(ctx: _Ctx, node: yaml.Node, steps: list[StepDef]) -> tuple[Threshold, ...]:
    """`thresholds: [{step, file, require: {metric: ">= 0.9"}}]`: metrics a product must meet."""
    from provenance.hashing import check_relative, has_glob

    out: list[Threshold] = []
    for item in ctx.sequence(node, "thresholds"):
        f = ctx.mapping(
            item, "a threshold", {"step", "file", "require"}, {"step", "file", "require"}
        )
        step = _name(ctx, f["step"][1], "threshold step")
        if step not in {s.name for s in steps}:
            raise ctx.fail(f["step"][1], f"threshold names unknown step '{step}'")
        text = ctx.string(f["file"][1], "threshold file")
        try:
            file = check_relative(text, what="threshold file")
        except InputError as exc:
            raise ctx.fail(f["file"][1], str(exc)) from None
        if has_glob(file):
            raise ctx.fail(f["file"][1], f"threshold file '{file}' must name a file, not a pattern")
        require = f["require"][1]
        if not isinstance(require, yaml.MappingNode) or not require.value:
            raise ctx.fail(require, 'require must map metrics to conditions like ">= 0.9"')
        seen: set[str] = set()
        for knode, vnode in require.value:
            metric = ctx.string(knode, "a metric name")
            if not METRIC_RE.match(metric):
                raise ctx.fail(
                    knode,
                    f"metric '{metric[:80]}' must be keys of letters, digits, '_' or '-' joined "
                    "by '.' (e.g. eval.accuracy)",
                )
            if metric in seen:
                raise ctx.fail(knode, f"duplicate metric '{metric}' for {file}")
            seen.add(metric)
            op, value = _requirement(ctx, vnode, metric)
            line = knode.start_mark.line + 1
            out.append(ctx.built(knode, Threshold, step, file, metric, op, value, line))
    return tuple(out)


def _requirement(ctx: _Ctx, node: yaml.Node, metric: str) -> tuple[str, float | int]:
    """'>= 0.9' -> ('>=', 0.9); the number must be finite (no nan, inf, or 1e400)."""
    what = f"the condition of metric '{metric}'"
    value = ctx.scalar(node, what)
    m = _REQUIREMENT.match(value) if isinstance(value, str) else None
    if m is None or not _NUMBER.match(m.group(2)):
        raise ctx.fail(
            node,
            f'{what} must be an operator (>=, >, <=, <, ==) and a number, like ">= 0.9" '
            f"(quoted), got {_kind(value)}",
        )
    text = m.group(2)
    if not any(c in text for c in ".eE"):
        if len(text.lstrip("+-")) > MAX_INT_DIGITS:
            raise ctx.fail(node, f"{what}: integer {text[:20]}... is too large")
        return m.group(1), int(text)
    number = float(text)
    if not math.isfinite(number):
        raise ctx.fail(node, f"{what}: {text[:40]} is out of range")
    return m.group(1), number


def _expires(ctx: _Ctx, node: yaml.Node) -> dt.datetime:
    value = ctx.scalar(node, "expires")
    now = dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)
        try:  # the signed layout records UTC: an offset is applied here, not dropped
            return value.astimezone(dt.timezone.utc)
        except (OverflowError, ValueError):
            raise ctx.fail(node, f"expires {value.isoformat()} is out of range") from None
    if isinstance(value, dt.date):
        return dt.datetime(value.year, value.month, value.day, tzinfo=dt.timezone.utc)
    if isinstance(value, str) and (m := _DURATION.match(value.strip())):
        days = int(m.group(1)) * {"d": 1, "w": 7, "y": 365}[m.group(2)]
        if days < 1:
            raise ctx.fail(node, "expires duration must be at least 1d")
        try:
            return now + dt.timedelta(days=days)
        except OverflowError:
            raise ctx.fail(node, f"expires duration {value.strip()} is out of range") from None
    raise ctx.fail(
        node, f"expires must be a date (2027-06-30) or a duration (180d), got {_kind(value)}"
    )


def _functionaries(ctx: _Ctx, node: yaml.Node, base: str, lines: dict[str, int]) -> dict[str, Any]:
    from provenance.signing.keys import key_material, load_public_key

    if not isinstance(node, yaml.MappingNode) or not node.value:
        raise ctx.fail(node, "functionaries must map names to public key files")
    out: dict[str, Any] = {}
    holders: dict[str, str] = {}  # key material -> the functionary who has it
    for knode, vnode in node.value:
        name = ctx.string(knode, "a functionary name")
        if name in out:
            raise ctx.fail(knode, f"duplicate functionary '{name}'")
        lines[f"functionaries.{name}"] = knode.start_mark.line + 1
        if isinstance(vnode, yaml.MappingNode):
            out[name] = _inline_key(ctx, vnode, name)
        else:
            rel = ctx.string(vnode, f"the key of functionary '{name}'")
            key_path = os.path.normpath(os.path.join(base, rel))
            try:
                out[name] = load_public_key(key_path)
            except InputError as exc:
                raise ctx.fail(vnode, f"functionary '{name}': {exc}") from None
        other = holders.setdefault(key_material(out[name]), name)
        if other != name:  # one person would count as two towards a step's threshold
            raise ctx.fail(vnode, f"functionaries '{other}' and '{name}' have the same public key")
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
    data = ctx.construct(node, f"the key of '{name}'")
    try:
        keyid = compute_default_keyid(data["keytype"], data["scheme"], data["keyval"])
        return Key.from_dict(keyid, dict(data))
    except (ValueError, KeyError, TypeError) as exc:
        raise ctx.fail(fields["keyval"][1], f"invalid key for '{name}': {exc}") from None


def _name(ctx: _Ctx, node: yaml.Node, what: str) -> str:
    name = ctx.string(node, what)
    return ctx.built(node, check_name, name, what)


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
        pattern = _pattern(ctx, fields[verb][1], f"the pattern of '{verb}' in {what}")
        line = rnode.start_mark.line + 1
        if verb != "match":
            rules.append(ctx.built(rnode, Rule, verb, pattern, line))
            continue
        of = ctx.string(fields["of"][1], "of") if "of" in fields else "products"
        if of not in ("products", "materials"):
            raise ctx.fail(fields["of"][1], f"'of' must be 'products' or 'materials', got '{of}'")
        from_step = _name(ctx, fields["from"][1], "from")
        in_prefix = _prefix(ctx, fields["in"][1], "in") if "in" in fields else None
        with_prefix = _prefix(ctx, fields["with"][1], "with") if "with" in fields else None
        rules.append(
            ctx.built(rnode, Rule, "match", pattern, line, from_step, of, in_prefix, with_prefix)
        )
    return tuple(rules)


def _pattern(ctx: _Ctx, node: yaml.Node, what: str) -> str:
    from provenance.hashing import check_glob

    text = ctx.string(node, what)
    try:
        return check_glob(text, f"pattern in {what}")
    except InputError as exc:
        raise ctx.fail(node, str(exc)) from None


def _prefix(ctx: _Ctx, node: yaml.Node, what: str) -> str:
    text = ctx.string(node, what)
    if "\x00" in text:
        raise ctx.fail(node, f"'{what}' prefix contains NUL")
    return text


def _threshold(ctx: _Ctx, node: yaml.Node) -> int:
    value = ctx.scalar(node, "threshold")
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ctx.fail(node, f"threshold must be an integer >= 1, got {_kind(value)}")
    return value


def _step(ctx: _Ctx, node: yaml.Node) -> StepDef:
    f = ctx.mapping(
        node,
        "a step",
        {"name", "functionaries", "threshold", "materials", "products", "command", "run_id"},
        {"name", "functionaries"},
    )
    name = _name(ctx, f["name"][1], "step name")
    where = f"step '{name}'"

    def opt(k: str) -> tuple[Rule, ...]:
        return _rules(ctx, f[k][1], f"{k} of {where}") if k in f else ()

    fields: dict[str, Any] = {
        "name": name,
        "functionaries": ctx.strings(f["functionaries"][1], f"functionaries of {where}"),
        "threshold": _threshold(ctx, f["threshold"][1]) if "threshold" in f else 1,
        "materials": opt("materials"),
        "products": opt("products"),
        "command": ctx.strings(f["command"][1], f"command of {where}") if "command" in f else (),
        "line": node.start_mark.line + 1,
        "run_id_optional": _run_id(ctx, f["run_id"][1], where) == "optional"
        if "run_id" in f
        else False,
    }
    return ctx.built(node, StepDef, **fields)


def _run_id(ctx: _Ctx, node: yaml.Node, where: str) -> str:
    """`run_id: required` (the default) or `optional` (accept links without a pipeline run id)."""
    value = ctx.scalar(node, f"run_id of {where}")
    if value not in ("required", "optional"):
        raise ctx.fail(
            node, f"run_id of {where} must be 'required' or 'optional', got {_kind(value)}"
        )
    return str(value)


def _inspection(ctx: _Ctx, node: yaml.Node) -> InspectionDef:
    f = ctx.mapping(
        node, "an inspection", {"name", "run", "materials", "products"}, {"name", "run"}
    )
    name = _name(ctx, f["name"][1], "inspection name")
    where = f"inspection '{name}'"
    fields: dict[str, Any] = {
        "name": name,
        "run": ctx.strings(f["run"][1], f"run of {where}"),
        "materials": _rules(ctx, f["materials"][1], f"materials of {where}")
        if "materials" in f
        else (),
        "products": _rules(ctx, f["products"][1], f"products of {where}")
        if "products" in f
        else (),
        "line": node.start_mark.line + 1,
    }
    return ctx.built(node, InspectionDef, **fields)


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
    for step in steps:  # a step's own invariants (functionaries, threshold) hold: StepDef
        for fname in step.functionaries:
            if fname not in functionaries:
                raise LayoutError(
                    ctx.path,
                    f"step '{step.name}' names unknown functionary '{fname}' "
                    f"(defined: {', '.join(sorted(functionaries))})",
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
