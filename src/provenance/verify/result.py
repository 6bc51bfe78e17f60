"""What verification found, as data: rendered as text or JSON by the CLI, returned by the API."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


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
        lines = [self.message]
        lines += [f"  {d}" for d in self.details]
        return "\n".join(lines)

    def summary(self) -> str:
        """One line: the message and its details."""
        extra = [d for d in self.details if d not in self.message]
        return self.message + (" (" + "; ".join(extra) + ")" if extra else "")


@dataclass
class StepReport:
    name: str
    links: list[dict[str, str]] = field(default_factory=list)  # file, keyid, functionary
    materials: int = 0
    products: int = 0


@dataclass
class VerificationResult:
    layout: str
    phases_run: list[str] = field(default_factory=list)
    failures: list[Failure] = field(default_factory=list)
    steps: list[StepReport] = field(default_factory=list)
    run_id: str | None = None
    artifacts_checked: int = 0
    base: str = "."

    @property
    def ok(self) -> bool:
        return not self.failures and bool(self.phases_run)

    @property
    def verdict(self) -> str:
        if self.ok:
            run = f", pipeline run {self.run_id[:12]}" if self.run_id else ""
            return (
                f"PASS: {len(self.steps)} step(s) verified against {self.layout}{run}; "
                f"{self.artifacts_checked} artifact(s) match the files in {self.base}"
            )
        if not self.failures:
            return "FAIL: nothing was verified"
        first = self.failures[0]
        more = f" (+{len(self.failures) - 1} more)" if len(self.failures) > 1 else ""
        return f"FAIL [{first.phase}]: {first.message}{more}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "verified": self.ok,
            "verdict": self.verdict,
            "layout": self.layout,
            "base": self.base,
            "run_id": self.run_id,
            "phases": self.phases_run,
            "artifacts_checked": self.artifacts_checked,
            "steps": [asdict(s) for s in self.steps],
            "failures": [
                {k: v for k, v in asdict(f).items() if v not in (None, ())} for f in self.failures
            ],
        }
