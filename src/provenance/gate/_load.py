"""Verified loading: a consumer gets a model's files only if the gate signed exactly those files.

Artifacts can be overwritten after promotion, so the check happens at load time: the gate's
signed decision for the alias must verify and have passed, the version must not be revoked, and
the downloaded files must hash to the signed digest. Files are downloaded into a scratch
directory beside DEST and moved into place only after the check; on any mismatch nothing is left.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from dataclasses import dataclass
from typing import Any

from provenance import _config
from provenance._fs import check_output_dir
from provenance.errors import InputError, UsageError, VerificationError
from provenance.gate._decision import DECISION_PREFIX, decision_for, open_record, revocation_of
from provenance.gate._tree import hash_tree
from provenance.gate._vsa import check_stored_vsa
from provenance.gate.registry import ModelVersion, Registry, registry_factory
from provenance.hashing import Manifest


@dataclass(frozen=True)
class LoadedModel:
    """A model version whose files were verified and placed in `path`."""

    name: str
    version: str
    alias: str
    path: str
    files: dict[str, str]


def _passed_aliases(mv: ModelVersion, gate_key: Any) -> list[str]:
    out = []
    for key, value in mv.tags.items():
        if key.startswith(DECISION_PREFIX):
            try:
                record = open_record(key, value, gate_key, mv.name, mv.version)
            except VerificationError:
                continue
            if getattr(record, "passed", False):
                out.append(key[len(DECISION_PREFIX) :])
    return sorted(out)


def load_verified(
    uri: str,
    dest: str,
    gate_key: Any = None,
    *,
    force: bool = False,
    registry: Registry | None = None,
    tracking_uri: str | None = None,
) -> LoadedModel:
    """Download `uri` into `dest` only if the gate's decision holds.

    The gate's decision for the alias must verify and have passed, the version must not be
    revoked, and the downloaded files must hash to the signed digest; otherwise nothing is left
    in `dest`.

    Args:
        uri: A model URI whose scheme names the registry (``models:/NAME@ALIAS``,
            ``models:/NAME/VERSION``: MLflow; see `gate.registry`).
        dest: Where the files go; absent or empty unless `force`.
        gate_key: The gate's public key (path, signer-URI public key, or Key); default
            PROVENANCE_GATE_PUBLIC_KEY (a trust anchor: never read from pyproject.toml).
        force: Replace a non-empty `dest`.
        registry: Use this registry instead of opening the one the URI names.
        tracking_uri: Where the URI's registry is (default MLFLOW_TRACKING_URI).

    Raises:
        UsageError: A malformed URI, an unknown scheme, or no gate key.
        InputError: The model, version or alias does not exist.
        VerificationError: No passed decision, a revocation, or files that changed.
        InfrastructureError: The registry cannot be reached.
    """
    from provenance.signing import load_public_key

    factory = registry_factory(uri)
    ref = factory.parse_uri(uri)
    name, alias, version = ref.name, ref.alias, ref.version
    if gate_key is None:
        # A trust anchor: from the caller or the environment, never from the project's own
        # pyproject.toml (whoever can write the working tree could name their own key there).
        gate_key = _config.environment("PROVENANCE_GATE_PUBLIC_KEY")
        if not gate_key:
            raise UsageError(
                "no gate public key: pass gate_key / --gate-pub-key or set "
                "PROVENANCE_GATE_PUBLIC_KEY"
            )
    if isinstance(gate_key, (str, os.PathLike)):
        gate_key = load_public_key(os.fspath(gate_key))
    check_output_dir(dest, "DEST", replace=force)  # before any download
    parent = os.path.dirname(os.path.abspath(dest)) or "."
    if registry is None:
        registry = factory(tracking_uri)
    if alias:
        found = registry.get_by_alias(name, alias)
        if found is None:
            raise InputError(None, f"{uri}: no version of '{name}' holds alias '{alias}'")
        mv = found
    else:
        mv = registry.get_version(name, str(version))
        passed = _passed_aliases(mv, gate_key)
        if len(passed) != 1:
            raise VerificationError(
                f"{uri}: version {mv.version} carries {len(passed)} passed gate decisions; "
                "fetch it by alias (models:/NAME@ALIAS)"
            )
        alias = passed[0]
    try:
        if (revoked := revocation_of(mv.tags, gate_key, name, mv.version)) is not None:
            raise VerificationError(
                f"version {mv.version} was revoked on {revoked.revoked_at}: {revoked.reason}"
            )
        decision = decision_for(mv.tags, gate_key, name, mv.version, alias)
        if not decision.passed:
            raise VerificationError(
                f"the gate refused version {mv.version} for '{alias}' on {decision.verified_at}: "
                + ("; ".join(decision.reasons) or "verification failed")
            )
    except VerificationError as exc:
        raise VerificationError(f"{uri}: {exc}") from None
    scratch = tempfile.mkdtemp(prefix=".provenance-fetch-", dir=parent)
    try:
        files_dir = registry.download(name, mv.version, os.path.join(scratch, "files"))
        files = hash_tree(files_dir, uri)
        if files.digest() != decision.artifacts_sha256:
            if decision.files is not None:
                why = Manifest(decision.files).diff(files).summary()
            else:
                why = "the files differ (the decision lists no per-file digests to say which)"
            raise VerificationError(f"{uri}: artifacts changed after promotion: {why}")
        if decision.vsa_sha256 is not None:
            problems = check_stored_vsa(
                mv.tags, gate_key, name, mv.version, alias, decision.vsa_sha256, files.files
            )
            if problems:
                raise VerificationError(f"{uri}: the gate's VSA does not hold: {problems[0]}")
        if os.path.lexists(dest):
            old = os.path.join(scratch, "replaced")
            os.replace(dest, old)
        os.replace(files_dir, dest)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return LoadedModel(name, mv.version, alias, dest, files.to_dict())
