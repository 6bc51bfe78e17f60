"""The layout as the owner wrote it: validated when built, before anything is compiled or signed.

Each type checks itself in `__post_init__` (python-tuf's `api/_payload.py` is the model), so a
layout built through the API, read from YAML or read back from a signed readme holds the same
invariants. A violation is a LayoutError without a path; the YAML loader adds the file and line.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from provenance._fs import NAME_RE
from provenance.errors import InputError, LayoutError

RULE_VERBS = ("create", "delete", "modify", "allow", "disallow", "require", "match")
METRIC_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}(?:\.[A-Za-z0-9_-]{1,64}){0,15}$")
"""A metric: object keys joined by dots (`eval.accuracy`), at most 16 levels."""


def _kind(value: Any) -> str:
    return "nothing" if value is None else f"{type(value).__name__} {value!r}"[:60]


def check_name(name: object, what: str, line: int | None = None) -> str:
    """`name` when it is a valid step, inspection or functionary-step name; else LayoutError."""
    if not isinstance(name, str) or not NAME_RE.match(name):
        shown = f"'{name[:130]}'" if isinstance(name, str) else _kind(name)
        raise LayoutError(
            None, f"{what} {shown} may hold letters, digits, '_', '.', '-' (max 128)", line
        )
    return name


def _strings(value: object, what: str, line: int | None) -> None:
    if not isinstance(value, tuple) or not all(isinstance(v, str) and v for v in value):
        raise LayoutError(None, f"{what} must be a tuple of non-empty strings", line)


def _checked(check: Callable[[], object], line: int | None, prefix: str = "") -> None:
    """Run a hashing-layer check; its InputError becomes a LayoutError at `line`."""
    try:
        check()
    except InputError as exc:
        raise LayoutError(None, prefix + str(exc), line) from None


def _rules(value: object, what: str, line: int | None) -> None:
    if not isinstance(value, tuple) or not all(isinstance(r, Rule) for r in value):
        raise LayoutError(None, f"{what} must be a tuple of rules", line)


def prefix_problem(prefix: str) -> str | None:
    """Why a MATCH `IN` prefix would not do what it says (None: it is a plain directory).

    in-toto compares a prefix with artifact paths as written, and the compiler's DISALLOW after
    a MATCH reads it as a glob: a prefix like './models' or 'models/.' matches nothing (both
    rules dead), and one like 'out[1]' leaves out[1]/* to a later rule.
    """
    from provenance.hashing import has_glob, is_safe_relative

    if prefix != prefix.strip() or not prefix.isprintable():
        return "has spaces around it or invisible characters (artifact paths have none there)"
    bare = prefix[:-1] if prefix.endswith("/") else prefix
    if not is_safe_relative(bare.removeprefix("s3://")):
        return (
            "is not a normalised relative directory "
            "(no leading '/' or './', no '.', '..' or empty segments)"
        )
    if has_glob(prefix):
        return "is a directory, not a pattern (no *, ? or [)"
    return None


@dataclass(frozen=True)
class Rule:
    """One artifact rule: `VERB pattern`, or `MATCH pattern [IN p] WITH of [IN p] FROM step`.

    Raises:
        LayoutError: an unknown verb, a malformed pattern or prefix, match-only fields on
            another verb, or a match without a valid `from_step`.
    """

    verb: str
    pattern: str
    line: int | None = None
    # match only
    from_step: str | None = None
    of: str = "products"  # which artifacts of `from_step`: products or materials
    in_prefix: str | None = None  # prefix of this step's artifacts
    with_prefix: str | None = None  # prefix of the other step's artifacts

    def __post_init__(self) -> None:
        from provenance.hashing import check_glob

        if self.verb not in RULE_VERBS:
            raise LayoutError(
                None,
                f"rule verb {_kind(self.verb)} is not one of: {', '.join(RULE_VERBS)}",
                self.line,
            )
        if not isinstance(self.pattern, str):
            raise LayoutError(None, f"the pattern of '{self.verb}' must be a string", self.line)
        _checked(lambda: check_glob(self.pattern, f"pattern of '{self.verb}'"), self.line)
        if self.verb != "match":
            if (self.from_step, self.of, self.in_prefix, self.with_prefix) != (
                None,
                "products",
                None,
                None,
            ):
                raise LayoutError(
                    None,
                    f"'{self.verb}' takes only a pattern (from, of, in, with: match only)",
                    self.line,
                )
            return
        check_name(self.from_step, "from", self.line)
        if self.of not in ("products", "materials"):
            raise LayoutError(
                None, f"'of' must be 'products' or 'materials', got {_kind(self.of)}", self.line
            )
        for label, prefix in (("in", self.in_prefix), ("with", self.with_prefix)):
            if prefix is None:
                continue
            if not isinstance(prefix, str) or "\x00" in prefix:
                raise LayoutError(None, f"'{label}' prefix must be a string without NUL", self.line)
            problem = prefix_problem(prefix)
            if problem is not None:
                raise LayoutError(None, f"'{label}' prefix '{prefix[:80]}' {problem}", self.line)

    def to_in_toto(self) -> list[str]:
        if self.verb != "match":
            return [self.verb.upper(), self.pattern]
        rule = ["MATCH", self.pattern]
        if self.in_prefix:
            rule += ["IN", self.in_prefix]
        rule += ["WITH", self.of.upper()]
        if self.with_prefix:
            rule += ["IN", self.with_prefix]
        return [*rule, "FROM", str(self.from_step)]

    @property
    def full_pattern(self) -> str:
        """The pattern as applied to this step's artifact paths (with the IN prefix)."""
        return f"{self.in_prefix.rstrip('/')}/{self.pattern}" if self.in_prefix else self.pattern

    def __str__(self) -> str:
        return " ".join(self.to_in_toto())


@dataclass(frozen=True)
class StepDef:
    """A step: who may sign its links (`threshold` of `functionaries`) and its artifact rules.

    Raises:
        LayoutError: a malformed name, no functionaries, a threshold below 1 or above the number
            of distinct functionaries, or fields of the wrong type.
    """

    name: str
    functionaries: tuple[str, ...]
    threshold: int
    materials: tuple[Rule, ...]
    products: tuple[Rule, ...]
    command: tuple[str, ...] = ()
    line: int | None = None
    # `run_id: optional`: links without a pipeline run id (e.g. written by the upstream
    # `in-toto-run`) are accepted for this step, with a warning, instead of failing verification.
    run_id_optional: bool = False

    def __post_init__(self) -> None:
        check_name(self.name, "step name", self.line)
        where = f"step '{self.name}'"
        _strings(self.functionaries, f"functionaries of {where}", self.line)
        if not self.functionaries:
            raise LayoutError(None, f"{where} has no functionaries", self.line)
        t = self.threshold
        if isinstance(t, bool) or not isinstance(t, int) or t < 1:
            raise LayoutError(None, f"threshold must be an integer >= 1, got {_kind(t)}", self.line)
        distinct = len(set(self.functionaries))
        if t > distinct:
            raise LayoutError(
                None, f"{where} threshold {t} exceeds its {distinct} functionaries", self.line
            )
        _rules(self.materials, f"materials of {where}", self.line)
        _rules(self.products, f"products of {where}", self.line)
        _strings(self.command, f"command of {where}", self.line)
        if not isinstance(self.run_id_optional, bool):
            raise LayoutError(None, f"run_id_optional of {where} must be a bool", self.line)


@dataclass(frozen=True)
class InspectionDef:
    """A command verification runs (in the checked directory), and rules over what it saw.

    Raises:
        LayoutError: a malformed name, no command, or fields of the wrong type.
    """

    name: str
    run: tuple[str, ...]
    materials: tuple[Rule, ...]
    products: tuple[Rule, ...]
    line: int | None = None

    def __post_init__(self) -> None:
        check_name(self.name, "inspection name", self.line)
        where = f"inspection '{self.name}'"
        _strings(self.run, f"run of {where}", self.line)
        if not self.run:
            raise LayoutError(None, f"run of {where} must name a command", self.line)
        _rules(self.materials, f"materials of {where}", self.line)
        _rules(self.products, f"products of {where}", self.line)


@dataclass(frozen=True)
class ModelDecl:
    """Which step's products are the deliverable the registry gate promotes.

    `products` is a glob over that step's products (`models/*`); the registered version holds
    exactly the matching files, named relative to `root` (the pattern's directory part).

    Raises:
        LayoutError: a malformed step name or products pattern (local or `s3://`).
    """

    step: str
    products: str
    line: int | None = field(default=None, compare=False)  # where it was written, not what

    def __post_init__(self) -> None:
        from provenance.hashing import objects

        check_name(self.step, "model step", self.line)
        if not isinstance(self.products, str) or not self.products:
            raise LayoutError(None, "model products must be a non-empty string", self.line)
        _checked(lambda: objects.compile_any(self.products), self.line, "model products: ")

    @property
    def root(self) -> str:
        """`models/` for `models/*` or `models/**`; empty when the pattern globs its first part."""
        parts = self.products.strip("/").split("/")
        literal: list[str] = []
        for part in parts[:-1]:
            if any(c in part for c in "*?["):
                break
            literal.append(part)
        return "/".join(literal) + "/" if literal else ""

    def to_dict(self) -> dict[str, str]:
        return {"step": self.step, "products": self.products}


THRESHOLD_OPERATORS = (">=", ">", "<=", "<", "==")


@dataclass(frozen=True)
class Threshold:
    """One metric a step's product must satisfy: `metric OP value` in the JSON file `file`.

    `metric` is a dotted path into the JSON object (`eval.accuracy`); `value` a finite number.

    Raises:
        LayoutError: a malformed step name, file (a relative path, not a pattern), metric or
            operator, or a value that is not a finite number.
    """

    step: str
    file: str
    metric: str
    op: str
    value: float | int
    line: int | None = field(default=None, compare=False)  # where it was written, not what

    def __post_init__(self) -> None:
        from provenance.hashing import check_relative, has_glob

        check_name(self.step, "threshold step", self.line)
        if not isinstance(self.file, str):
            raise LayoutError(None, f"threshold file {_kind(self.file)} is not a path", self.line)
        _checked(lambda: check_relative(self.file, what="threshold file"), self.line)
        if check_relative(self.file) != self.file:
            raise LayoutError(
                None, f"threshold file '{self.file}' is not a normalised relative path", self.line
            )
        if has_glob(self.file):
            raise LayoutError(
                None, f"threshold file '{self.file}' must name a file, not a pattern", self.line
            )
        if not isinstance(self.metric, str) or not METRIC_RE.match(self.metric):
            shown = f"'{self.metric[:80]}'" if isinstance(self.metric, str) else _kind(self.metric)
            raise LayoutError(
                None,
                f"metric {shown} must be keys of letters, digits, '_' or '-' joined by '.' "
                "(e.g. eval.accuracy)",
                self.line,
            )
        if self.op not in THRESHOLD_OPERATORS:
            raise LayoutError(
                None,
                f"operator {self.op!r} is not one of {' '.join(THRESHOLD_OPERATORS)}",
                self.line,
            )
        if isinstance(self.value, bool) or not isinstance(self.value, (int, float)):
            raise LayoutError(None, f"threshold {self.value!r} is not a number", self.line)
        if not math.isfinite(self.value):
            raise LayoutError(None, f"threshold {self.value!r} is not finite", self.line)

    def holds(self, actual: float | int) -> bool:
        """Whether `actual` meets this threshold."""
        return {
            ">=": actual >= self.value,
            ">": actual > self.value,
            "<=": actual <= self.value,
            "<": actual < self.value,
            "==": actual == self.value,
        }[self.op]

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "step": self.step,
            "file": self.file,
            "metric": self.metric,
            "op": self.op,
            "value": self.value,
        }


@dataclass
class LayoutSpec:
    path: str
    expires: dt.datetime | None
    functionaries: dict[str, Any]  # name -> securesystemslib Key
    steps: list[StepDef]
    inspections: list[InspectionDef] = field(default_factory=list)
    readme: str = ""
    lines: dict[str, int] = field(default_factory=dict)  # "expires", "functionaries.NAME"
    model: ModelDecl | None = None
    thresholds: tuple[Threshold, ...] = ()
