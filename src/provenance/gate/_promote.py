"""`promote`: verify a registered model version end to end, then sign the decision, set the alias.

Order matters: nothing is trusted from the registry's existing `provenance.*` tags; the version's
files are downloaded and hashed; the layout, links and those files are verified (the files must
be exactly the model the layout declares), and SLSA provenance when given; the decision — passed
or failed — is signed and recorded for this (model, version, alias); only a passed one is
followed by the alias. The layout digest in the decision is that of the bytes verification read.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from provenance.errors import UsageError
from provenance.gate._checks import AttestationCheck, CheckOutcome
from provenance.gate._decision import (
    FAILED,
    PASSED,
    Decision,
    Revocation,
    decision_tag,
    fit_files,
    now,
    revocation_of,
    sign_record,
    vsa_tag,
)
from provenance.gate._tree import hash_tree
from provenance.gate._vsa import sign_vsa
from provenance.gate.registry import Registry, open_registry
from provenance.verification import Failure, VerificationResult, verify

if TYPE_CHECKING:
    from securesystemslib.signer import Key, Signer


@dataclass
class PromotionResult:
    """What `promote` decided, and why."""

    model: str
    version: str
    alias: str
    promoted: bool = False
    verification: VerificationResult | None = None
    attestations: list[str] = field(default_factory=list)  # failures of the attestation checks
    failures: list[Failure] = field(default_factory=list)
    artifacts_sha256: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    decision: Decision | None = None
    record: str | None = None  # the signed decision as stored in the registry
    vsa: dict[str, Any] | None = None  # the decision as a signed SLSA VSA (DSSE envelope)
    scan: dict[str, Any] | None = None  # the gate's own scan of the model files

    @property
    def ok(self) -> bool:
        return self.promoted

    @property
    def verdict(self) -> str:
        if self.promoted:
            return (
                f"PROMOTED: {self.model} version {self.version} -> @{self.alias} "
                f"({len(self.files)} files, artifacts sha256 {self.artifacts_sha256})"
            )
        return f"REFUSED: {self.model} version {self.version} not promoted to @{self.alias}: " + (
            self.failures[0].summary() if self.failures else "verification failed"
        )

    def lines(self) -> list[str]:
        """What the verdict line leaves out: every further failure."""
        return [f"- {f.summary()}" for f in self.failures[1:]]

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "alias": self.alias,
            "promoted": self.promoted,
            "verdict": self.verdict,
            "failures": [f.summary() for f in self.failures],
            "artifacts_sha256": self.artifacts_sha256,
            "files": self.files,
            "attestations": self.attestations,
            "decision": self.decision.to_dict() if self.decision else None,
            "vsa": self.vsa,
            "scan": self.scan,
            "verification": self.verification.to_dict() if self.verification else None,
        }


def _scan(files_dir: str, allow: Sequence[str]) -> tuple[dict[str, Any], list[str]]:
    """The gate scans the exact bytes it is about to vouch for; an unsafe finding refuses."""
    from provenance.scanning import scan_paths

    allowed = [os.path.join(files_dir, a) for a in allow]
    report = scan_paths([files_dir], base=files_dir, allow=allowed)
    return report.to_dict(), [f"scan: {f}" for f in report.failures()]


def _levels(
    verified: bool, scanned: bool, attested: Sequence[str], thresholds_met: bool = False
) -> list[str]:
    """What this decision establishes (docs/attestations.md#levels)."""
    from provenance.attest import ML_MODEL_SCANNED, ML_PROVENANCE_CHAIN_VERIFIED
    from provenance.attest.vsa import ML_EVALUATION_THRESHOLDS_MET

    levels = list(attested)  # only what checks that passed established
    if verified:
        levels.append(ML_PROVENANCE_CHAIN_VERIFIED)
    if scanned:
        levels.append(ML_MODEL_SCANNED)
    if verified and thresholds_met:
        levels.append(ML_EVALUATION_THRESHOLDS_MET)
    return levels


def _evidence_files(root: str) -> dict[str, str]:
    """Recorded path -> local file for the evidence a run logged (regular files only)."""
    out: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if not os.path.islink(os.path.join(dirpath, d))]
        for name in filenames:
            local = os.path.join(dirpath, name)
            if os.path.isfile(local) and not os.path.islink(local):
                out[os.path.relpath(local, root).replace(os.sep, "/")] = local
    return out


def promote(
    model: str,
    version: str,
    alias: str,
    *,
    layout: str,
    layout_keys: Sequence[Key | str],
    gate_signer: Signer,
    registry: Registry | None = None,
    links_dir: str | None = None,
    attestations: Sequence[AttestationCheck] = (),
    scan_allow: Sequence[str] = (),
    tracking_uri: str | None = None,
    evidence_dir: str | None = None,
) -> PromotionResult:
    """Verify `model` `version` and, only if everything holds, point `alias` at it.

    The model files are also scanned (`provenance scan`'s policy), and the decision — passed or
    failed — is recorded on the version as a signed record and a SLSA VSA. A verification
    failure is a result (``promoted`` False) with a signed FAILED decision for this alias.

    Args:
        model: The registered model's name.
        version: The version to verify.
        alias: The alias to set when everything holds (e.g. ``champion``).
        layout: Path of the signed layout.
        layout_keys: The owner keys that must have signed the layout.
        gate_signer: The gate's key: signs the decision and the VSA.
        registry: The registry; default the MLflow registry at `tracking_uri`.
        links_dir: The links to verify; default those the version's run logged.
        attestations: Further checks of the model files (e.g. `SlsaCheck`).
        scan_allow: Pickle-based files (paths in the version) the scan accepts anyway.
        tracking_uri: Where the default registry is (default MLFLOW_TRACKING_URI).
        evidence_dir: Metrics files the layout's thresholds read, laid out by their recorded
            paths; default the evidence the version's run logged (`register --evidence`).

    Returns:
        What was decided and why, with the signed record and VSA.

    Raises:
        UsageError: `evidence_dir` is not a directory, or there are no links to verify.
        InputError: The version, the layout or a key cannot be read.
        InfrastructureError: The registry cannot be reached.
    """
    version = str(version)
    if evidence_dir is not None and not os.path.isdir(evidence_dir):
        raise UsageError(f"--evidence {evidence_dir}: not a directory")
    registry = open_registry(registry, tracking_uri)
    result = PromotionResult(model, version, alias)
    outcomes: list[CheckOutcome] = []
    info = registry.get_version(model, version)
    with tempfile.TemporaryDirectory(prefix="provenance-gate-") as tmp:
        files_dir = registry.download(model, version, os.path.join(tmp, "files"))
        source = f"'{model}' version {version}"
        files = hash_tree(files_dir, source)
        result.files = files.to_dict()
        if links_dir is None:
            if not info.run_id:
                raise UsageError(f"version {version} has no run to take links from; pass --links")
            links_dir = registry.download_links(info.run_id, os.path.join(tmp, "links"))
        evidence: str | dict[str, str] = evidence_dir or {}
        if evidence_dir is None and info.run_id:
            evidence = _evidence_files(
                registry.download_evidence(info.run_id, os.path.join(tmp, "evidence"))
            )
        # Inspections run where the downloaded version is; the layout's model must be exactly
        # these files.
        verification = verify(
            layout,
            layout_keys,
            links_dir,
            files_dir,
            model_files=files.files,
            model_source=source,
            evidence=evidence,
        )
        result.verification = verification
        if not verification.ok:
            result.failures = list(verification.failures)
        else:
            result.scan, scan_failures = _scan(files_dir, scan_allow)
            result.failures = [Failure("scan", f) for f in scan_failures]
            outcomes = [check.check(files_dir, files) for check in attestations]
            result.attestations = [f for o in outcomes for f in o.failures]
            result.failures += [Failure("attestation", f) for f in result.attestations]
    result.artifacts_sha256 = files.digest()
    inputs = [(f"{v.file}", v.sha256) for v in verification.links.values()]
    inputs += [i for o in outcomes for i in o.inputs]  # the very bytes each check verified
    vsa = (
        None
        if not files.files
        else sign_vsa(
            model=model,
            version=version,
            files=files.files,
            policy_uri=os.path.basename(layout),
            policy_sha256=str(verification.layout_sha256),
            inputs=inputs,
            passed=not result.failures,
            levels=_levels(
                verification.ok,
                result.scan is not None and not result.failures,
                [lv for o in outcomes if o.ok for lv in o.levels] if not result.failures else [],
                thresholds_met=bool(verification.thresholds),
            ),
            signer=gate_signer,
        )
    )
    result.vsa = vsa.envelope if vsa else None
    decision = fit_files(
        Decision(
            model,
            version,
            alias,
            FAILED if result.failures else PASSED,
            result.artifacts_sha256,
            str(verification.layout_sha256),
            now(),
            verification.run_id,
            tuple(f.summary()[:300] for f in result.failures[:5]),
            files.files,
            vsa.sha256 if vsa and vsa.fits_a_tag else None,
        )
    )
    result.decision, result.record = decision, sign_record(decision, gate_signer)
    if vsa and vsa.fits_a_tag:
        registry.set_tag(model, version, vsa_tag(alias), vsa.text)
    # A failed decision replaces any earlier passed one for this alias: fail closed.
    registry.set_tag(model, version, decision_tag(alias), result.record)
    if decision.passed:
        registry.set_alias(model, alias, version)
        result.promoted = True
    return result


def revoke(
    model: str,
    version: str,
    *,
    gate_signer: Signer,
    reason: str,
    registry: Registry | None = None,
    tracking_uri: str | None = None,
) -> Revocation:
    """Record a gate-signed revocation of `model` `version`.

    The version then holds no protected alias, and every alias that pointed at it on the
    strength of a gate decision is removed. Revoking twice returns the first revocation.

    Args:
        model: The registered model's name.
        version: The version to revoke.
        gate_signer: The gate's key: signs the revocation.
        reason: Why (recorded and signed).
        registry: The registry; default the MLflow registry at `tracking_uri`.
        tracking_uri: Where the default registry is (default MLFLOW_TRACKING_URI).

    Raises:
        InputError: The version does not exist.
        InfrastructureError: The registry cannot be reached.
    """
    version = str(version)
    registry = open_registry(registry, tracking_uri)
    info = registry.get_version(model, version)
    existing = revocation_of(info.tags, gate_signer.public_key, model, version)
    if existing is not None:
        return existing
    record = Revocation(model, version, now(), reason)
    registry.set_tag(model, version, "provenance.revoked", sign_record(record, gate_signer))
    for alias in info.aliases:
        if decision_tag(alias) in info.tags:
            registry.delete_alias(model, alias)
    return record
