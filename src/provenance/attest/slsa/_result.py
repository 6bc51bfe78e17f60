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
    """A verification's result; `ok` only when a provenance document passed every check.

    `facts` holds only what the signature established: for certificate-signed provenance the
    signing workflow and the certificate's extensions (`signer`, `source_repository`,
    `source_ref`, `source_commit`, ...); for key-signed provenance the key. `claims` holds what
    the statement says of itself (builder id, source, workflow inputs, ...), attributed to the
    signer and never reported as verified.
    """

    artifact: str
    verifier: str
    sha256: str  # the artifact's digest in `digest_alg` (sha256 unless gh's --digest-alg sha512)
    provenance: str | None = None
    provenance_sha256: str | None = None  # of the exact bytes verified
    producer: str | None = None
    facts: dict[str, str] = field(default_factory=dict)
    claims: dict[str, Any] = field(default_factory=dict)
    failures: list[Failure] = field(default_factory=list)
    authentic: bool = False  # the signature verified (the checks may still have failed)
    digest_alg: str = "sha256"

    @property
    def ok(self) -> bool:
        return self.authentic and not self.failures

    @property
    def signer(self) -> str | None:
        """Who signed, as verified: the workflow identity, or `key <keyid>`."""
        if "signer" in self.facts:
            return self.facts["signer"]
        return f"key {self.facts['key']}" if "key" in self.facts else None

    @property
    def source(self) -> str | None:
        """The verified source repository (None when only claimed, e.g. key-signed)."""
        return self.facts.get("source_repository")

    @property
    def ref(self) -> str | None:
        """The verified source ref (None when only claimed)."""
        return self.facts.get("source_ref")

    def lines(self) -> list[str]:
        """What the verdict line leaves out: every further failure."""
        return [f"- {f}" for f in self.failures[1:]]

    def _claimed(self) -> str:
        shown = []
        builder = self.claims.get("builder_id")
        if builder and builder != self.facts.get("signer"):
            shown.append(f"builder {builder}")
        if "key" in self.facts:
            src, ref = self.claims.get("source_repository"), self.claims.get("source_ref")
            if src:
                shown.append(f"source {src}" + (f"@{ref}" if ref else ""))
            if self.claims.get("source_commit"):
                shown.append(f"commit {self.claims['source_commit']}")
        if not shown:
            return ""
        who = "the key holder" if "key" in self.facts else "the statement"
        return f"; claimed by {who}: {', '.join(shown)}"

    @property
    def verdict(self) -> str:
        if self.ok:
            verified = f"signed by {self.signer}"
            if self.source:
                verified += f" from {self.source}" + (f"@{self.ref}" if self.ref else "")
            if self.facts.get("source_commit"):
                verified += f" (commit {self.facts['source_commit']})"
            return (
                f"PASS: {self.artifact} ({self.digest_alg} {self.sha256}) verified: {verified}"
                f"{self._claimed()} [verifier: {self.verifier}]"
            )
        reason = self.failures[0].message if self.failures else "not verified"
        return f"FAIL: {reason} [verifier: {self.verifier}]"

    def to_dict(self) -> dict[str, Any]:
        return {
            "artifact": self.artifact,
            "verifier": self.verifier,
            self.digest_alg: self.sha256,
            "digest": f"{self.digest_alg}:{self.sha256}",
            "provenance": self.provenance,
            "provenance_sha256": self.provenance_sha256,
            "producer": self.producer,
            "verified": self.ok,
            "authentic": self.authentic,
            "facts": {"verified": dict(self.facts), "claimed": dict(self.claims)},
            "failures": [f.to_dict() for f in self.failures],
            "verdict": self.verdict,
        }
