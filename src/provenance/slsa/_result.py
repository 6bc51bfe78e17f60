"""The outcome of a SLSA verification: what was checked, and every mismatch as got/expected."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Failure:
    """One check that did not hold: `what` was compared, `expected` vs what the input had."""

    what: str
    expected: str | None = None
    actual: str | None = None

    @property
    def message(self) -> str:
        if self.expected is None and self.actual is None:
            return self.what
        if self.expected is None:
            return f"{self.what}: {self.actual}"
        return f"{self.what}: got {self.actual!r}, expected {self.expected!r}"

    def __str__(self) -> str:
        return self.message

    def to_dict(self) -> dict[str, Any]:
        return {
            "what": self.what,
            "expected": self.expected,
            "actual": self.actual,
            "message": self.message,
        }


@dataclass
class SlsaResult:
    """A verification's result; `ok` only when a provenance document passed every check."""

    artifact: str
    verifier: str
    sha256: str
    provenance: str | None = None
    producer: str | None = None
    builder_id: str | None = None
    signer: str | None = None
    source: str | None = None
    ref: str | None = None
    failures: list[Failure] = field(default_factory=list)
    authentic: bool = False  # the signature verified (the checks may still have failed)

    @property
    def ok(self) -> bool:
        return self.authentic and not self.failures

    @property
    def verified(self) -> bool:
        """Kept for callers of the earlier result type: the same as `ok`."""
        return self.ok

    def lines(self) -> list[str]:
        """What the verdict line leaves out: every further failure."""
        return [f"- {f}" for f in self.failures[1:]]

    @property
    def verdict(self) -> str:
        if self.ok:
            signed = (
                f" (signed by {self.signer})" if self.signer not in (None, self.builder_id) else ""
            )
            return (
                f"PASS: {self.artifact} (sha256 {self.sha256}) was built by {self.builder_id}"
                f"{signed} from {self.source}@{self.ref} [verifier: {self.verifier}]"
            )
        reason = self.failures[0].message if self.failures else "not verified"
        return f"FAIL: {reason} [verifier: {self.verifier}]"

    def to_dict(self) -> dict[str, Any]:
        return {
            "artifact": self.artifact,
            "verifier": self.verifier,
            "sha256": self.sha256,
            "provenance": self.provenance,
            "producer": self.producer,
            "builder_id": self.builder_id,
            "signer": self.signer,
            "source": self.source,
            "ref": self.ref,
            "verified": self.ok,
            "authentic": self.authentic,
            "failures": [f.to_dict() for f in self.failures],
            "verdict": self.verdict,
        }
