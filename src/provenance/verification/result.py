"""What verification found, as data: rendered as text or JSON by the CLI, returned by the API."""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from provenance.layout import LayoutPolicy, ModelDecl
    from provenance.links import VerifiedLink


@dataclass(frozen=True)
class Failure:
    """One reason verification failed; fields name exactly what it is about."""

    phase: str
    message: str
    step: str | None = None
    rule: str | None = None
    artifact: str | None = None
    expected: str | None = None
    actual: str | None = None
    details: tuple[str, ...] = ()

    def render(self) -> str:
        """The message, then each detail indented on a line of its own."""
        lines = [self.message]
        lines += [f"  {d}" for d in self.details]
        return "\n".join(lines)

    def summary(self) -> str:
        """One line: the message and its details."""
        extra = [d for d in self.details if d not in self.message]
        return self.message + (" (" + "; ".join(extra) + ")" if extra else "")


@dataclass
class StepReport:
    """What was found for one step: its accepted links and how many artifacts they record.

    `ignored` names every link file of the step that was not used and why (a key not allowed
    or unknown, e.g. rotated out; a changed link; another step's name inside), so a verdict
    never says "found 0" without saying what was found instead.
    """

    name: str
    links: list[dict[str, str]] = field(default_factory=list)  # file, keyid, functionary
    materials: int = 0
    products: int = 0
    ignored: list[dict[str, str]] = field(default_factory=list)  # file, reason


@dataclass
class VerificationResult:
    """The outcome of `verify`, carrying exactly what was verified.

    `layout_bytes` are the signed layout as read and checked (nothing re-reads the file);
    `policy` is what it declares beyond in-toto (model, thresholds, functionary names, run-id
    opt-ins), parsed once when it was read; `links` holds, per step, the accepted link with its
    exact bytes. Consumers (promote, SLSA attest, reports) take these and never re-open the
    layout or the links directory, nor parse its readme again.
    """

    layout: str
    phases_run: list[str] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    steps: list[StepReport] = field(default_factory=list)
    run_id: str | None = None
    artifacts_checked: int = 0
    base: str = "."
    layout_bytes: bytes = field(default=b"", repr=False)
    layout_obj: Any = field(default=None, repr=False)  # in_toto.models.layout.Layout
    links: dict[str, VerifiedLink] = field(default_factory=dict, repr=False)
    policy: LayoutPolicy | None = None  # None until the layout's signatures were checked
    # The layout's thresholds as checked: step, file, metric, op, value, actual, met.
    thresholds: list[dict[str, Any]] = field(default_factory=list)
    ignored: list[dict[str, str]] = field(default_factory=list)  # files no step reads: file, reason
    # What passed but weakens the guarantee (e.g. a link accepted without a pipeline run id).
    warnings: list[str] = field(default_factory=list)

    @property
    def model(self) -> ModelDecl | None:
        """The model the signed layout declares (from `policy`), if any."""
        return self.policy.model if self.policy is not None else None

    @property
    def layout_sha256(self) -> str | None:
        """sha256 hex of the signed layout bytes that were verified (None before they were read)."""
        return hashlib.sha256(self.layout_bytes).hexdigest() if self.layout_bytes else None

    @property
    def ok(self) -> bool:
        """True when at least one phase ran and none failed."""
        return not self.failures and bool(self.phases_run)

    @property
    def verdict(self) -> str:
        """The one-line verdict every run prints (PASS or FAIL, with the run id or the count)."""
        if self.ok:
            # Whole: orchestrators' run ids share long prefixes, so a shortened id names neither.
            run = f", pipeline run {self.run_id}" if self.run_id else ""
            warned = f" ({len(self.warnings)} warning(s))" if self.warnings else ""
            return (
                f"PASS: {len(self.steps)} step(s) verified against {self.layout}{run}; "
                f"{self.artifacts_checked} artifact(s) match the files in {self.base}{warned}"
            )
        if not self.failures:
            return "FAIL: nothing was verified"
        first = self.failures[0]
        more = f" (+{len(self.failures) - 1} more)" if len(self.failures) > 1 else ""
        return f"FAIL [{first.phase}]: {first.message}{more}"

    def lines(self) -> list[str]:
        """Every failure with what it is about, then the link files that were ignored."""
        out: list[str] = []
        for failure in self.failures:
            out.append(f"- [{failure.phase}] {failure.message}")
            for label in ("step", "rule", "artifact", "expected", "actual"):
                value = getattr(failure, label)
                if value:
                    out.append(f"    {label}: {value}")
            out += [f"    * {detail}" for detail in failure.details]
        ignored: list[tuple[str | None, dict[str, str]]] = [
            (s.name, i) for s in self.steps for i in s.ignored
        ]
        ignored += [(None, i) for i in self.ignored]
        if ignored:
            out.append(f"ignored link file(s): {len(ignored)}")
            for step, item in ignored:
                where = f" (step '{step}')" if step else ""
                out.append(f"  - {item['file']}{where}: {item['reason']}")
        # What passed but weakens the guarantee (e.g. links without a pipeline run id).
        out += [f"warning: {w}" for w in self.warnings]
        return out

    def to_dict(self) -> dict[str, Any]:
        """The `--json` document of `provenance verify`."""
        return {
            "verified": self.ok,
            "verdict": self.verdict,
            "layout": self.layout,
            "base": self.base,
            "run_id": self.run_id,
            "layout_sha256": self.layout_sha256,
            "model": self.model.to_dict() if self.model else None,
            "thresholds": self.thresholds,
            "links": {s: {"file": v.file, "sha256": v.sha256} for s, v in self.links.items()},
            "phases": self.phases_run,
            "artifacts_checked": self.artifacts_checked,
            "steps": [asdict(s) for s in self.steps],
            "ignored": list(self.ignored),
            "warnings": list(self.warnings),
            "failures": [
                {k: v for k, v in asdict(f).items() if v not in (None, ())} for f in self.failures
            ],
        }
