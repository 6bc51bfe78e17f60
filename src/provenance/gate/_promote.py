"""`promote`: verify a registered model version end to end, then sign the decision, set the alias.

Order matters: nothing is trusted from the registry's existing `provenance.*` tags; the version's
files are downloaded and hashed; the layout, links and those files are verified (and SLSA
provenance when given); only then are the decision tags written and the alias set. On failure
the alias is untouched and the version records why.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from provenance.errors import UsageError
from provenance.gate import _client
from provenance.gate._decision import (
    MAX_TAG_VALUE,
    TAG_ARTIFACTS,
    TAG_FAILURE,
    TAG_LAYOUT,
    TAG_MANIFEST,
    TAG_RUN_ID,
    TAG_SIGNATURE,
    TAG_VERIFIED,
    TAG_VERIFIED_AT,
    Decision,
    artifacts_digest,
    signature_tag,
)
from provenance.gate._files import check_registered, hash_tree
from provenance.verify import VerificationResult, verify


@dataclass
class SlsaCheck:
    provenance: str
    source_uri: str
    key: Any = None  # public key for key-signed provenance, else Sigstore
    trusted_root: str | None = None
    builder_id: str | None = None


@dataclass
class PromotionResult:
    model: str
    version: str
    alias: str
    promoted: bool = False
    verification: VerificationResult | None = None
    slsa: list[str] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)
    artifacts_sha256: str | None = None
    files: dict[str, str] = field(default_factory=dict)

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
            "verification": self.verification.to_dict() if self.verification else None,
        }


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _slsa(files_dir: str, files: dict[str, str], check: SlsaCheck) -> list[str]:
    import os

    from provenance.slsa.verify import Expectations, verify_builtin

    failures = []
    for rel in sorted(files):
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
    links_dir: str | None = None,
    artifact_path: str | None = None,
    slsa: SlsaCheck | None = None,
    tracking_uri: str | None = None,
) -> PromotionResult:
    """Verify `model` `version` and, only if everything holds, point `alias` at it."""
    version = str(version)
    result = PromotionResult(model, version, alias)
    mc = _client.client(tracking_uri)
    with _client.mlflow_errors(f"reading model '{model}' version {version}"):
        mv = mc.get_model_version(model, version)
    with _client.scratch() as tmp:
        files_dir = _client.download_version(mc, model, version, f"{tmp}/files")
        files = hash_tree(files_dir)
        result.files = files
        if links_dir is None:
            if not mv.run_id:
                raise UsageError(f"version {version} has no run to take links from; pass --links")
            links_dir = _client.download_run_links(mc, mv.run_id, f"{tmp}/links")
        source = f"registered version {version}"
        result.verification = verify(
            layout,
            layout_keys,
            links_dir,
            ".",
            final_products=lambda expected: check_registered(
                files, expected, artifact_path, source
            ),
        )
        if not result.verification.ok:
            result.failures = [f.summary() for f in result.verification.failures]
        elif slsa is not None:
            result.slsa = _slsa(files_dir, files, slsa)
            result.failures = result.slsa
    with open(layout, "rb") as f:
        layout_digest = hashlib.sha256(f.read()).hexdigest()
    if result.failures:
        _record_failure(mc, model, version, alias, result)
        return result
    digest = artifacts_digest(files)
    decision = Decision(model, version, alias, digest, layout_digest, _now())
    signature = decision.sign(gate_signer)
    manifest = json.dumps(files, sort_keys=True, separators=(",", ":"))
    tags = {
        TAG_VERIFIED: "true",
        TAG_LAYOUT: layout_digest,
        TAG_ARTIFACTS: digest,
        TAG_VERIFIED_AT: decision.verified_at,
        TAG_SIGNATURE: signature,
        signature_tag(alias): signature,
    }
    if result.verification and result.verification.run_id:
        tags[TAG_RUN_ID] = result.verification.run_id
    if len(manifest) <= MAX_TAG_VALUE:
        tags[TAG_MANIFEST] = manifest
    with _client.mlflow_errors(f"recording the decision on '{model}' version {version}"):
        if TAG_FAILURE in mv.tags:
            mc.delete_model_version_tag(model, version, TAG_FAILURE)
        for key, value in tags.items():
            mc.set_model_version_tag(model, version, key, value)
    with _client.mlflow_errors(f"setting alias '{alias}' on '{model}' version {version}"):
        mc.set_registered_model_alias(model, alias, version)
    result.promoted, result.artifacts_sha256 = True, digest
    return result


def _record_failure(mc: Any, model: str, version: str, alias: str, result: PromotionResult) -> None:
    """Tags say why; any earlier signature for this alias is withdrawn (fail closed)."""
    reason = "; ".join(result.failures)
    if len(reason) > MAX_TAG_VALUE:
        reason = reason[: MAX_TAG_VALUE - 3] + "..."
    with _client.mlflow_errors(f"recording the refusal on '{model}' version {version}"):
        mc.set_model_version_tag(model, version, TAG_VERIFIED, "false")
        mc.set_model_version_tag(model, version, TAG_FAILURE, reason)
        current = mc.get_model_version(model, version).tags
        for key in (signature_tag(alias), TAG_SIGNATURE):
            if key in current:
                mc.delete_model_version_tag(model, version, key)
