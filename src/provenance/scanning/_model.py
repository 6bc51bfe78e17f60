"""What a scan reports: per file, its digest, the format recognised and the findings."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

Severity = Literal["error", "info"]


@dataclass(frozen=True)
class Finding:
    """One observation about a file; an `error` makes the scan fail."""

    check: str  # e.g. "pickle-import", "unsafe-format", "safetensors-header"
    message: str  # e.g. "imports posix.system (dangerous)"
    severity: Severity = "error"

    def to_dict(self) -> dict[str, str]:
        """The finding as JSON."""
        return {"check": self.check, "message": self.message, "severity": self.severity}


@dataclass(frozen=True)
class FileReport:
    """One scanned file: its digest, the format its name routes it to, and what was found."""

    path: str  # POSIX, relative to the scan base
    sha256: str
    format: str  # "safetensors", "pickle", "pytorch-zip", "onnx", "gguf", "numpy", …, "other"
    allowed: bool = False  # named by the allow-list (a pickle the owner accepts by name)
    findings: tuple[Finding, ...] = ()
    shown: str = ""  # the file as the user named it (defaults to path)

    @property
    def name(self) -> str:
        """The file as the user named it."""
        return self.shown or self.path

    @property
    def ok(self) -> bool:
        """No error finding: the file passes."""
        return not any(f.severity == "error" for f in self.findings)

    def errors(self) -> list[Finding]:
        """The findings that fail the file."""
        return [f for f in self.findings if f.severity == "error"]

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON (``path`` as recorded, ``file`` as named)."""
        return {
            "path": self.path,
            "file": self.name,
            "sha256": self.sha256,
            "format": self.format,
            "allowed": self.allowed,
            "ok": self.ok,
            "findings": [f.to_dict() for f in self.findings],
        }


@dataclass(frozen=True)
class ScanReport:
    """A whole scan: every file's report, the scanner's versions and the files allowed."""

    files: tuple[FileReport, ...]
    scanner: dict[str, str] = field(default_factory=dict)  # component -> version
    allowed: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """At least one file, and every file passes."""
        return bool(self.files) and all(f.ok for f in self.files)

    def failures(self) -> list[str]:
        """One line per error: ``FILE: finding``, the file as the user named it."""
        return [f"{r.name}: {e.message}" for r in self.files for e in r.errors()]

    def verdict(self) -> str:
        """The one-line verdict printed by ``provenance scan``."""
        bad = sum(1 for f in self.files if not f.ok)
        if not self.files:
            return "scan FAILED: no file to scan"
        if bad:
            return f"scan FAILED: {bad} of {len(self.files)} file(s) unsafe or malformed"
        return f"scan PASSED: {len(self.files)} file(s) clean"

    def to_dict(self) -> dict[str, Any]:
        """The scan as the JSON document ``provenance scan --json`` prints."""
        return {
            "ok": self.ok,
            "verdict": self.verdict(),
            "scanner": dict(self.scanner),
            "allowed": list(self.allowed),
            "files": [f.to_dict() for f in self.files],
            "failures": self.failures(),
        }
