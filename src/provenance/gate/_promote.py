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
from typing import Any

from provenance.errors import UsageError
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
)
from provenance.gate._tree import hash_tree
from provenance.gate.registry import Registry
from provenance.hashing import Manifest
from provenance.verification import VerificationResult, verify


@dataclass(frozen=True)
class SlsaCheck:
    """SLSA provenance that must also cover the model files."""

    provenance: str
    source_uri: str
    key: Any = None  # public key for key-signed provenance, else Sigstore
    trusted_root: str | None = None
    builder_id: str | None = None


@dataclass
class PromotionResult:
    """What `promote` decided, and why."""

    model: str
    version: str
    alias: str
    promoted: bool = False
    verification: VerificationResult | None = None
    slsa: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    artifacts_sha256: str | None = None
    files: dict[str, str] = field(default_factory=dict)
    decision: Decision | None = None
    record: str | None = None  # the signed decision as stored in the registry

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
            self.failures[0] if self.failures else "verification failed"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "version": self.version,
            "alias": self.alias,
            "promoted": self.promoted,
            "verdict": self.verdict,
            "failures": self.failures,
            "artifacts_sha256": self.artifacts_sha256,
            "files": self.files,
            "slsa": self.slsa,
            "decision": self.decision.to_dict() if self.decision else None,
            "verification": self.verification.to_dict() if self.verification else None,
        }


def _slsa(files_dir: str, files: Manifest, check: SlsaCheck) -> list[str]:
    from provenance.slsa.verify import Expectations, verify_builtin

    failures = []
    for rel in sorted(files.files):
        result = verify_builtin(
            os.path.join(files_dir, rel),
            check.provenance,
            Expectations(check.source_uri, check.builder_id),
            trusted_root=check.trusted_root,
            key=check.key,
        )
        if not result.verified:
            failures.append(f"SLSA provenance for '{rel}': {result.failures[0]}")
    return failures


def promote(
    model: str,
    version: str,
    alias: str,
    *,
    layout: str,
    layout_keys: Sequence[Any],
    gate_signer: Any,
    registry: Registry | None = None,
    links_dir: str | None = None,
    slsa: SlsaCheck | None = None,
    tracking_uri: str | None = None,
) -> PromotionResult:
    """Verify `model` `version` and, only if everything holds, point `alias` at it.

    `registry` defaults to the MLflow registry at `tracking_uri`. Raises InputError for bad
    inputs and InfrastructureError when the registry is unreachable; a verification failure is
    a result (promoted False) with a signed FAILED decision recorded for this alias.
    """
    version = str(version)
    if registry is None:
        from provenance.gate.mlflow import MlflowRegistry

        registry = MlflowRegistry(tracking_uri)
    result = PromotionResult(model, version, alias)
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
        # Inspections run where the downloaded version is; the layout's model must be exactly
        # these files.
        verification = verify(
            layout, layout_keys, links_dir, files_dir, model_files=files.files, model_source=source
        )
        result.verification = verification
        if not verification.ok:
            result.failures = [f.summary() for f in verification.failures]
        elif slsa is not None:
            result.slsa = _slsa(files_dir, files, slsa)
            result.failures = list(result.slsa)
    result.artifacts_sha256 = files.digest()
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
            tuple(f[:300] for f in result.failures[:5]),
            files.files,
        )
    )
    result.decision, result.record = decision, sign_record(decision, gate_signer)
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
    gate_signer: Any,
    reason: str,
    registry: Registry | None = None,
    tracking_uri: str | None = None,
) -> Revocation:
    """Record a gate-signed revocation; the version then holds no protected alias, and every
    alias that pointed at it on the strength of a gate decision is removed."""
    version = str(version)
    if registry is None:
        from provenance.gate.mlflow import MlflowRegistry

        registry = MlflowRegistry(tracking_uri)
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
