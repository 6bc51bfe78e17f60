"""SLSA Verification Summary Attestation v1: the gate's decision in a format others can check.

The VSA says "verifier V checked these model files (subjects, sha256) at time T against policy P
(the signed layout, by digest), using these input attestations, and the result was R at levels
L". slsa-verifier's ``verify-vsa`` reads the exported `.intoto.jsonl` (docs/attestations.md).

Our levels, beside the SLSA ones (``SLSA_BUILD_LEVEL_n`` as established by SLSA provenance):
- ``ML_PROVENANCE_CHAIN_VERIFIED``: the owner-signed layout verified against the signed step
  links, and the model files equal the final step's products;
- ``ML_MODEL_SCANNED``: every model file is covered, with the same sha256, by a PASSED signed
  scan attestation (no pickle code, well-formed safetensors/ONNX/GGUF);
- ``ML_EVALUATION_THRESHOLDS_MET``: the layout's metric thresholds held (reserved for the
  evaluation policy).
Each is all-or-nothing, so a consumer can require it by name (``--verified-levels``).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from provenance._fs import UTC_FORMAT
from provenance._version import __version__
from provenance.attest._fields import Fields
from provenance.attest._resource import ResourceDescriptor
from provenance.attest.statement import (
    Predicate,
    SignedStatement,
    Statement,
    Subject,
    register,
)
from provenance.errors import InputError, UsageError

PREDICATE_TYPE = "https://slsa.dev/verification_summary/v1"
DEFAULT_VERIFIER_ID = "https://github.com/ml-provenance/ml-provenance/gate@v1"
SLSA_VERSION = "1.0"

ML_PROVENANCE_CHAIN_VERIFIED = "ML_PROVENANCE_CHAIN_VERIFIED"
ML_MODEL_SCANNED = "ML_MODEL_SCANNED"
ML_EVALUATION_THRESHOLDS_MET = "ML_EVALUATION_THRESHOLDS_MET"
ML_LEVELS = (ML_PROVENANCE_CHAIN_VERIFIED, ML_MODEL_SCANNED, ML_EVALUATION_THRESHOLDS_MET)

Result = Literal["PASSED", "FAILED"]
_LEVEL = re.compile(r"[A-Z][A-Z0-9_]*\Z")
_SLSA_LEVEL = re.compile(r"SLSA_(BUILD|SOURCE)_LEVEL_[0-4]\Z")


def _check_level(level: str, source: str | None, *, ours: bool) -> None:
    if not isinstance(level, str) or not _LEVEL.match(level):
        raise InputError(source, f"verification level {level!r} is not UPPER_SNAKE_CASE")
    if ours and level.startswith("SLSA_") and not _SLSA_LEVEL.match(level):
        raise UsageError(f"{level} is not a SLSA level (SLSA_BUILD_LEVEL_0..3 or SLSA_SOURCE_...)")


_TIME = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)\Z")


def _parse_time(text: str, source: str | None) -> dt.datetime:
    """RFC 3339 with a zone; Go writes up to nanoseconds, which Python 3.10 cannot parse."""
    m = _TIME.match(text)
    try:
        if not m:
            raise ValueError
        zone = "+00:00" if m.group(3) == "Z" else m.group(3)
        frac = (m.group(2) or "0")[:6].ljust(6, "0")
        return dt.datetime.fromisoformat(f"{m.group(1)}.{frac}{zone}")
    except ValueError:
        raise InputError(source, f"predicate.timeVerified {text!r} is not RFC 3339") from None


@register
@dataclass(frozen=True)
class VerificationSummary(Predicate):
    """The VSA v1 predicate (https://slsa.dev/spec/v1.0/verification_summary)."""

    predicate_type = PREDICATE_TYPE

    verifier_id: str
    resource_uri: str
    policy: ResourceDescriptor
    verification_result: Result
    verified_levels: tuple[str, ...]
    time_verified: str = ""
    verifier_version: Mapping[str, str] = field(default_factory=dict)
    input_attestations: tuple[ResourceDescriptor, ...] = ()
    dependency_levels: Mapping[str, int] = field(default_factory=dict)
    slsa_version: str = ""

    def __post_init__(self) -> None:
        if self.verification_result not in ("PASSED", "FAILED"):
            raise UsageError(
                f"verificationResult must be PASSED or FAILED, not {self.verification_result!r}"
            )
        if not self.verifier_id or not self.resource_uri:
            raise UsageError("a VSA needs verifier.id and resourceUri")
        object.__setattr__(self, "verified_levels", tuple(self.verified_levels))
        object.__setattr__(self, "input_attestations", tuple(self.input_attestations))

    @property
    def passed(self) -> bool:
        """True when the summary's result is PASSED."""
        return self.verification_result == "PASSED"

    def to_dict(self) -> dict[str, Any]:
        """The predicate as SLSA VSA v1 JSON."""
        verifier: dict[str, Any] = {"id": self.verifier_id}
        if self.verifier_version:
            verifier["version"] = dict(self.verifier_version)
        doc: dict[str, Any] = {
            "verifier": verifier,
            "resourceUri": self.resource_uri,
            "policy": self.policy.to_dict(),
            "verificationResult": self.verification_result,
            "verifiedLevels": list(self.verified_levels),
        }
        if self.time_verified:
            doc["timeVerified"] = self.time_verified
        if self.input_attestations:
            doc["inputAttestations"] = [a.to_dict() for a in self.input_attestations]
        if self.dependency_levels:
            doc["dependencyLevels"] = dict(self.dependency_levels)
        if self.slsa_version:
            doc["slsaVersion"] = self.slsa_version
        return doc

    @classmethod
    def from_dict(cls, doc: Any, source: str | None) -> VerificationSummary:
        """Read a SLSA VSA v1 predicate strictly (InputError naming `source` on any bad field)."""
        f = Fields(doc, "predicate", source)
        v = Fields(f.obj("verifier"), "predicate.verifier", source)
        verifier_id = v.req_text("id")
        version = v.obj("version", required=False) or {}
        if not all(isinstance(x, str) for x in version.values()):
            raise v.error("version", "must map component names to version strings")
        v.done()
        time_verified = f.text("timeVerified", required=False) or ""
        if time_verified:
            _parse_time(time_verified, source)
        resource_uri = f.req_text("resourceUri")
        policy = ResourceDescriptor.from_dict(f.obj("policy"), "predicate.policy", source)
        inputs = tuple(
            ResourceDescriptor.from_dict(a, f"predicate.inputAttestations[{i}]", source)
            for i, a in enumerate(f.array("inputAttestations", required=False))
        )
        result = f.req_text("verificationResult")
        if result not in ("PASSED", "FAILED"):
            raise f.error("verificationResult", f"must be PASSED or FAILED, got {result!r}")
        levels = f.str_list("verifiedLevels")
        for level in levels:
            _check_level(level, source, ours=False)
        deps = f.obj("dependencyLevels", required=False) or {}
        for level, count in deps.items():
            _check_level(level, source, ours=False)
            if not isinstance(count, int) or isinstance(count, bool) or count < 0:
                raise f.error("dependencyLevels", f"{level} must be a non-negative integer")
        slsa_version = f.text("slsaVersion", required=False) or ""
        f.done()
        return cls(
            verifier_id,
            resource_uri,
            policy,
            "PASSED" if result == "PASSED" else "FAILED",
            tuple(levels),
            time_verified,
            version,
            inputs,
            deps,
            slsa_version,
        )


@dataclass(frozen=True)
class InputAttestation:
    """An attestation the verifier relied on: where it is and the sha256 of its exact bytes."""

    uri: str
    sha256: str


def build_vsa(
    *,
    subjects: Mapping[str, str],
    resource_uri: str,
    policy_uri: str,
    policy_sha256: str,
    input_attestations: Iterable[InputAttestation | tuple[str, str]] = (),
    passed: bool,
    verified_levels: Sequence[str] = (),
    time_verified: dt.datetime | None = None,
    verifier_id: str = DEFAULT_VERIFIER_ID,
    dependency_levels: Mapping[str, int] | None = None,
) -> Statement[VerificationSummary]:
    """A VSA statement from plain data (model file path -> sha256, the layout's URI and sha256).

    A FAILED result carries the single level ``FAILED`` as the specification asks.
    """
    if not subjects:
        raise UsageError("a VSA needs at least one model file as subject")
    for level in verified_levels:
        _check_level(level, None, ours=True)
    levels = tuple(dict.fromkeys(verified_levels)) if passed else ("FAILED",)
    when = (time_verified or dt.datetime.now(dt.timezone.utc)).astimezone(dt.timezone.utc)
    inputs = tuple(
        ResourceDescriptor(uri=a[0], digest={"sha256": a[1]})
        if isinstance(a, tuple)
        else ResourceDescriptor(uri=a.uri, digest={"sha256": a.sha256})
        for a in input_attestations
    )
    predicate = VerificationSummary(
        verifier_id=verifier_id,
        resource_uri=resource_uri,
        policy=ResourceDescriptor(uri=policy_uri, digest={"sha256": policy_sha256}),
        verification_result="PASSED" if passed else "FAILED",
        verified_levels=levels,
        time_verified=when.strftime(UTC_FORMAT),
        verifier_version={"ml-provenance": __version__},
        input_attestations=inputs,
        dependency_levels=dict(dependency_levels or {}),
        slsa_version=SLSA_VERSION,
    )
    return Statement(
        tuple(Subject(name, {"sha256": digest}) for name, digest in sorted(subjects.items())),
        predicate,
    )


def check_vsa(
    signed: SignedStatement[VerificationSummary],
    *,
    files: Mapping[str, str],
    resource_uri: str | None = None,
    verifier_id: str | None = None,
    required_levels: Iterable[str] = (),
) -> list[str]:
    """What is wrong with a verified VSA for these model files (empty list: it vouches for them).

    The checks of ``slsa-verifier verify-vsa`` (subject digests, verifier, resource, levels,
    PASSED), plus: the subjects are exactly `files` (no file missing, none extra).
    """
    vsa, where = signed.statement.predicate, signed.source
    failures: list[str] = []
    if not vsa.passed:
        failures.append(f"{where}: verificationResult is {vsa.verification_result}")
    if verifier_id is not None and vsa.verifier_id != verifier_id:
        failures.append(f"{where}: verifier.id is {vsa.verifier_id!r}, expected {verifier_id!r}")
    if resource_uri is not None and vsa.resource_uri != resource_uri:
        failures.append(f"{where}: resourceUri is {vsa.resource_uri!r}, expected {resource_uri!r}")
    missing_levels = sorted(set(required_levels) - set(vsa.verified_levels))
    if missing_levels:
        failures.append(f"{where}: verifiedLevels lacks {', '.join(missing_levels)}")
    attested = signed.statement.digests()
    for path in sorted(set(files) | set(attested)):
        if path not in attested:
            failures.append(f"{where}: model file '{path}' is not a subject of the VSA")
        elif path not in files:
            failures.append(f"{where}: VSA subject '{path}' is not a model file (extra)")
        elif attested[path] != files[path]:
            failures.append(
                f"{where}: sha256 mismatch for '{path}': attested {attested[path]}, "
                f"actual {files[path]}"
            )
    return failures
