"""The scan result as a signed in-toto test-result attestation, and the check promote runs.

Predicate ``https://in-toto.io/attestation/test-result/v0.1`` fits a scan exactly: a result
(PASSED/FAILED) over named checks, and the configuration used (scanner and policy). The vulns
predicate is for known vulnerabilities from a database, which a pickle-import finding is not.
Subjects are the scanned files with their sha256; each file is one test named ``scan:PATH``
(failed ones ``scan:PATH: FINDING``), so coverage of a file is an exact string match.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from provenance.attest._fields import Fields
from provenance.attest._resource import ResourceDescriptor
from provenance.attest.statement import (
    Predicate,
    SignedStatement,
    Statement,
    Subject,
    read_statements,
    register,
)
from provenance.errors import UsageError, VerificationError
from provenance.scanning import ScanReport

PREDICATE_TYPE = "https://in-toto.io/attestation/test-result/v0.1"
POLICY_NAME = "ml-provenance/scan-policy"
POLICY_URI = "https://github.com/ml-provenance/ml-provenance/blob/main/docs/attestations.md#scan"
TestOutcome = Literal["PASSED", "WARNED", "FAILED"]


@register
@dataclass(frozen=True)
class TestResult(Predicate):
    """in-toto test-result v0.1."""

    __test__ = False  # not a pytest class
    predicate_type = PREDICATE_TYPE

    result: TestOutcome
    configuration: tuple[ResourceDescriptor, ...]
    url: str = ""
    passed_tests: tuple[str, ...] = ()
    warned_tests: tuple[str, ...] = ()
    failed_tests: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.result not in ("PASSED", "WARNED", "FAILED"):
            raise UsageError(f"test result must be PASSED, WARNED or FAILED, not {self.result!r}")
        for name in ("configuration", "passed_tests", "warned_tests", "failed_tests"):
            object.__setattr__(self, name, tuple(getattr(self, name)))

    def to_dict(self) -> dict[str, Any]:
        """The predicate as in-toto test-result JSON."""
        doc: dict[str, Any] = {
            "result": self.result,
            "configuration": [c.to_dict() for c in self.configuration],
            "passedTests": list(self.passed_tests),
            "warnedTests": list(self.warned_tests),
            "failedTests": list(self.failed_tests),
        }
        if self.url:
            doc["url"] = self.url
        return doc

    @classmethod
    def from_dict(cls, doc: Any, source: str | None) -> TestResult:
        """Read a test-result predicate strictly (InputError naming `source` on any bad field)."""
        f = Fields(doc, "predicate", source)
        result = f.req_text("result")
        if result not in ("PASSED", "WARNED", "FAILED"):
            raise f.error("result", f"must be PASSED, WARNED or FAILED, got {result!r}")
        configuration = tuple(
            ResourceDescriptor.from_dict(c, f"predicate.configuration[{i}]", source)
            for i, c in enumerate(f.array("configuration"))
        )
        url = f.text("url", required=False) or ""
        passed = f.str_list("passedTests", required=False)
        warned = f.str_list("warnedTests", required=False)
        failed = f.str_list("failedTests", required=False)
        f.done()
        outcome: TestOutcome = (
            "PASSED" if result == "PASSED" else ("WARNED" if result == "WARNED" else "FAILED")
        )
        return cls(outcome, configuration, url, tuple(passed), tuple(warned), tuple(failed))


def test_name(path: str) -> str:
    """The test name a scan records for one model file."""
    return f"scan:{path}"


test_name.__test__ = False  # type: ignore[attr-defined]


def build_scan_statement(report: ScanReport) -> Statement[TestResult]:
    """The statement for a scan: every file a subject, one test per file."""
    if not report.files:
        raise UsageError("nothing was scanned")
    passed = tuple(test_name(r.path) for r in report.files if r.ok)
    failed = tuple(f"{test_name(r.path)}: {e.message}" for r in report.files for e in r.errors())
    configuration = (
        ResourceDescriptor(
            name=POLICY_NAME,
            uri=POLICY_URI,
            annotations={"allowedPickles": list(report.allowed), "scanner": dict(report.scanner)},
        ),
    )
    predicate = TestResult(
        "PASSED" if report.ok else "FAILED", configuration, passed_tests=passed, failed_tests=failed
    )
    subjects = tuple(Subject(r.path, {"sha256": r.sha256}) for r in report.files)
    return Statement(subjects, predicate)


def _is_model_scan(signed: SignedStatement[TestResult]) -> bool:
    return any(c.name == POLICY_NAME for c in signed.statement.predicate.configuration)


def check_scan_attestation(
    path: str | os.PathLike[str],
    keys: Mapping[str, Any] | Iterable[Any],
    files: Mapping[str, str],
) -> list[str]:
    """Failures (empty when fine) of the scan attestations over the model files.

    Every model file must be covered by a PASSED scan whose subject has the same sha256.
    Signature failures are failures; malformed input raises InputError (exit 3).
    """
    where = os.fspath(path)
    if not files:
        raise UsageError("no model files given to check against the scan attestation")
    try:
        statements = read_statements(where, keys, TestResult)
    except VerificationError as exc:
        return [str(exc)]
    scans = [s for s in statements if _is_model_scan(s)]
    if not scans:
        return [f"{where}: no model scan attestation ({POLICY_NAME}) in the file"]
    failures: list[str] = []
    for model_path, digest in sorted(files.items()):
        covered, seen = False, []
        for s in scans:
            attested = s.statement.digests().get(model_path)
            if attested is None:
                continue
            seen.append(attested)
            pred = s.statement.predicate
            if (
                attested == digest
                and pred.result == "PASSED"
                and test_name(model_path) in pred.passed_tests
            ):
                covered = True
                break
        if covered:
            continue
        if not seen:
            failures.append(f"model file '{model_path}' is not covered by the scan attestation")
        elif digest not in seen:
            failures.append(
                f"sha256 mismatch for '{model_path}': scanned {seen[0]}, actual {digest}"
            )
        else:
            prefix = test_name(model_path) + ": "
            reasons = [
                t.removeprefix(prefix)
                for s in scans
                for t in s.statement.predicate.failed_tests
                if t.startswith(prefix)
            ]
            why = f": {'; '.join(reasons)}" if reasons else ""
            failures.append(f"model file '{model_path}' did not pass the scan{why}")
    return failures
