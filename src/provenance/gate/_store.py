"""MLflow model-registry store plugin: protected aliases only move to gate-verified versions.

MLflow has no pre-promotion hook and one EDIT permission covers aliases, tags and versions, so
the check lives in the registry store itself. Run the server with

    PROVENANCE_GATE_PUBLIC_KEY=/etc/provenance/gate.pub \\
    PROVENANCE_PROTECTED_ALIASES=champion,production \\
    mlflow server --backend-store-uri sqlite:///mlflow.db \\
                  --registry-store-uri provenance-sqlite:///mlflow.db

Setting a protected alias, or moving a version to the Production stage, is refused unless the
version carries the gate's valid signature for that alias and its files (re-hashed here, on the
server) still have the signed digest. Without a configured gate key every such request is refused.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from typing import Any

from mlflow.exceptions import MlflowException
from mlflow.protos.databricks_pb2 import PERMISSION_DENIED
from mlflow.store.model_registry.sqlalchemy_store import SqlAlchemyStore

from provenance.gate._decision import artifacts_digest, check_tags
from provenance.gate._files import hash_tree

SCHEMES = {
    "provenance-sqlite": "sqlite",
    "provenance-postgresql": "postgresql",
    "provenance-mysql": "mysql",
}
DEFAULT_PROTECTED = "champion,production"


def _refuse(message: str) -> MlflowException:
    return MlflowException(f"ml-provenance gate: {message}", error_code=PERMISSION_DENIED)


class ProvenanceRegistryStore(SqlAlchemyStore):
    """SqlAlchemyStore that checks the gate's signed decision before protected promotions."""

    def __init__(self, db_uri: str) -> None:
        super().__init__(db_uri)
        raw = os.environ.get("PROVENANCE_PROTECTED_ALIASES", DEFAULT_PROTECTED)
        self.protected = {a.strip().lower() for a in raw.split(",") if a.strip()}
        self._gate_key_path = os.environ.get("PROVENANCE_GATE_PUBLIC_KEY")

    def _gate_key(self) -> Any:
        from provenance.errors import ProvenanceError
        from provenance.signing import load_public_key

        if not self._gate_key_path:
            raise _refuse(
                "no gate key configured (PROVENANCE_GATE_PUBLIC_KEY); protected "
                "promotions are refused"
            )
        try:
            return load_public_key(self._gate_key_path)
        except ProvenanceError as exc:
            raise _refuse(f"gate key unusable: {exc}") from None

    def _check(self, name: str, version: str, alias: str) -> None:
        """Refuse unless the gate's decision holds; any unexpected error also refuses."""
        try:
            self._check_decision(name, version, alias)
        except MlflowException:
            raise
        except Exception as exc:  # noqa: BLE001 - fail closed, with a reason, never a 500
            raise _refuse(f"cannot check version {version} of '{name}': {exc}") from None

    def _check_decision(self, name: str, version: str, alias: str) -> None:
        mv = self.get_model_version(name, version)
        try:
            decision = check_tags(name, str(version), alias, dict(mv.tags), self._gate_key())
        except ValueError as exc:
            raise _refuse(str(exc)) from None
        actual = artifacts_digest(self._hash_version(name, version))
        if actual != decision.artifacts_sha256:
            raise _refuse(
                f"the files of version {version} changed since the gate verified them "
                f"(signed {decision.artifacts_sha256[:16]}…, now {actual[:16]}…)"
            )

    def _hash_version(self, name: str, version: str) -> dict[str, str]:
        """Hash the version's files from the artifact store the server itself serves."""
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        source = self.get_model_version_download_uri(name, version)
        if source.startswith("mlflow-artifacts:"):
            from mlflow.server import ARTIFACTS_DESTINATION_ENV_VAR

            root = os.environ.get(ARTIFACTS_DESTINATION_ENV_VAR)
            if not root:
                raise _refuse(f"cannot read {source} from this process to re-check its files")
            source = root.rstrip("/") + "/" + source.split(":", 1)[1].lstrip("/")
        tmp = tempfile.mkdtemp(prefix="provenance-store-")
        try:
            local = get_artifact_repository(source).download_artifacts("", dst_path=tmp)
            return hash_tree(local)
        except MlflowException:
            raise
        except Exception as exc:  # noqa: BLE001 - any failure to read the files refuses
            raise _refuse(f"cannot re-check the files of version {version}: {exc}") from None
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    def set_registered_model_alias(self, name: str, alias: str, version: str) -> None:
        if alias.lower() in self.protected:
            self._check(name, version, alias)
        super().set_registered_model_alias(name, alias, version)

    def transition_model_version_stage(
        self, name: str, version: str, stage: str, archive_existing_versions: bool
    ) -> Any:
        if stage.lower() == "production":
            self._check(name, version, "production")
        return super().transition_model_version_stage(
            name, version, stage, archive_existing_versions
        )


def make_store(store_uri: str, tracking_uri: str | None = None) -> ProvenanceRegistryStore:
    scheme, sep, rest = store_uri.partition(":")
    if scheme not in SCHEMES or not sep:
        raise MlflowException(f"unsupported registry store URI {store_uri!r}")
    return ProvenanceRegistryStore(f"{SCHEMES[scheme]}:{rest}")
