"""The layout as the owner wrote it: validated when built, before anything is compiled or signed."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass, field
from typing import Any

RULE_VERBS = ("create", "delete", "modify", "allow", "disallow", "require", "match")


@dataclass(frozen=True)
class Rule:
    verb: str
    pattern: str
    line: int | None = None
    # match only
    from_step: str | None = None
    of: str = "products"  # which artifacts of `from_step`: products or materials
    in_prefix: str | None = None  # prefix of this step's artifacts
    with_prefix: str | None = None  # prefix of the other step's artifacts

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


@dataclass(frozen=True)
class InspectionDef:
    name: str
    run: tuple[str, ...]
    materials: tuple[Rule, ...]
    products: tuple[Rule, ...]
    line: int | None = None


@dataclass(frozen=True)
class ModelDecl:
    """Which step's products are the deliverable the registry gate promotes.

    `products` is a glob over that step's products (`models/*`); the registered version holds
    exactly the matching files, named relative to `root` (the pattern's directory part).
    """

    step: str
    products: str
    line: int | None = None

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
    """

    step: str
    file: str
    metric: str
    op: str
    value: float | int
    line: int | None = None

    def __post_init__(self) -> None:
        if self.op not in THRESHOLD_OPERATORS:
            raise ValueError(f"operator {self.op!r} is not one of {' '.join(THRESHOLD_OPERATORS)}")
        if isinstance(self.value, bool) or not isinstance(self.value, (int, float)):
            raise ValueError(f"threshold {self.value!r} is not a number")
        if not math.isfinite(self.value):
            raise ValueError(f"threshold {self.value!r} is not finite")

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
