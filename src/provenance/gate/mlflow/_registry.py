"""`Registry` over MLflow's client: every call mapped to the exit-code contract by `_client`.

`MlflowRegistry` is also the `RegistryFactory` of the ``models:`` scheme (`gate.registry`).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from provenance.errors import UsageError
from provenance.gate.mlflow import _client
from provenance.gate.registry import ModelRef, ModelVersion, Registered, parse_model_uri

if TYPE_CHECKING:
    from provenance.gate.registry import Registry, RegistryFactory
from provenance.record import MLFLOW_LINKS_ARTIFACT_DIR


def _version(mv: Any) -> ModelVersion:
    return ModelVersion(
        str(mv.name),
        str(mv.version),
        mv.run_id or None,
        dict(mv.tags or {}),
        tuple(getattr(mv, "aliases", ()) or ()),
    )


class MlflowRegistry:
    """The gate's view of an MLflow model registry (tracking URI, or MLFLOW_TRACKING_URI)."""

    def __init__(self, tracking_uri: str | None = None) -> None:
        self.tracking_uri = tracking_uri
        self.client = _client.client(tracking_uri)

    @staticmethod
    def parse_uri(uri: str) -> ModelRef:
        """Read ``models:/NAME@ALIAS`` or ``models:/NAME/VERSION``.

        Raises:
            UsageError: `uri` has neither form.
        """
        name, alias, version = parse_model_uri(uri)
        return ModelRef(uri, name, alias, version)

    def get_version(self, name: str, version: str) -> ModelVersion:
        """The version `version` of model `name` (InputError when it does not exist)."""
        with _client.mlflow_errors(f"reading model '{name}' version {version}"):
            return _version(self.client.get_model_version(name, version))

    def get_by_alias(self, name: str, alias: str) -> ModelVersion | None:
        """The version holding `alias`, or None when no version holds it."""
        from mlflow.exceptions import MlflowException

        with _client.mlflow_errors(f"resolving '{name}@{alias}'"):
            try:
                return _version(self.client.get_model_version_by_alias(name, alias))
            except MlflowException as exc:
                if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                    return None
                raise

    def search_versions(self, name: str, *, run_id: str | None = None) -> list[ModelVersion]:
        """The versions of model `name` (only those of run `run_id` if given), newest first.

        Raises:
            UsageError: A name or run id holds a quote, which MLflow's filter cannot carry.
        """
        if "'" in name or (run_id is not None and "'" in run_id):
            raise UsageError(f"cannot search the versions of {name!r}: quotes in a name or run id")
        query = f"name = '{name}'" + (f" and run_id = '{run_id}'" if run_id is not None else "")
        found: list[Any] = []
        with _client.mlflow_errors(f"searching the versions of '{name}'"):
            token = None
            while True:
                page = self.client.search_model_versions(query, page_token=token)
                found += page
                token = page.token
                if not token:
                    break
        return sorted((_version(mv) for mv in found), key=lambda v: -int(v.version))

    def download(self, name: str, version: str, dest: str) -> str:
        """Download the version's files under `dest`; return the directory holding them."""
        from mlflow.artifacts import download_artifacts

        with _client.mlflow_errors(f"downloading model '{name}' version {version}"):
            uri = self.client.get_model_version_download_uri(name, version)
            path = download_artifacts(
                artifact_uri=uri,
                dst_path=dest,
                tracking_uri=self.client._tracking_client.tracking_uri,
            )
        return path if os.path.isdir(path) else os.path.dirname(path)

    def download_links(self, run_id: str, dest: str) -> str:
        """Download the links run `run_id` logged (``provenance/links/``); return the directory."""
        with _client.mlflow_errors(f"downloading links of run {run_id}"):
            return str(self.client.download_artifacts(run_id, MLFLOW_LINKS_ARTIFACT_DIR, dest))

    def download_evidence(self, run_id: str, dest: str) -> str:
        """Download the evidence run `run_id` logged; return its directory (empty when none)."""
        from provenance.gate.mlflow._register import EVIDENCE_ARTIFACT_DIR

        with _client.mlflow_errors(f"downloading evidence of run {run_id}"):
            if not self.client.list_artifacts(run_id, EVIDENCE_ARTIFACT_DIR):
                os.makedirs(dest, exist_ok=True)
                return dest
            return str(self.client.download_artifacts(run_id, EVIDENCE_ARTIFACT_DIR, dest))

    def create_version(
        self,
        name: str,
        files_dir: str,
        *,
        links_dir: str | None = None,
        evidence: Mapping[str, str] | None = None,
        run_id: str | None = None,
    ) -> Registered:
        """Log `files_dir` (and links, evidence) as run artifacts and make a version of them."""
        from provenance.gate.mlflow._register import create_version

        return create_version(
            self.client, name, files_dir, links_dir=links_dir, evidence=evidence, run_id=run_id
        )

    def set_tag(self, name: str, version: str, key: str, value: str) -> None:
        """Set tag `key` on the version."""
        with _client.mlflow_errors(f"recording '{key}' on '{name}' version {version}"):
            self.client.set_model_version_tag(name, version, key, value)

    def set_alias(self, name: str, alias: str, version: str) -> None:
        """Point `alias` at the version."""
        with _client.mlflow_errors(f"setting alias '{alias}' on '{name}' version {version}"):
            self.client.set_registered_model_alias(name, alias, version)

    def delete_alias(self, name: str, alias: str) -> None:
        """Remove `alias` from the model."""
        with _client.mlflow_errors(f"removing alias '{alias}' of '{name}'"):
            self.client.delete_registered_model_alias(name, alias)

    def gather_links(self, ref: str, dest: str) -> str:
        """Gather every link of one pipeline run into `dest`.

        `ref` is an MLflow run id, or a pipeline run id that the runs carry as tag
        `provenance.run_id`. Nothing is trusted here; `verify` checks each link's signature
        before reading it.

        Raises:
            InputError: No run carries `ref`.
        """
        import re
        import shutil

        from mlflow.entities import ViewType

        with _client.mlflow_errors(f"finding the runs of {ref}"):
            if re.fullmatch(r"[0-9a-f]{32}", ref):
                run_ids = [ref]
            else:
                experiments = self.client.search_experiments(view_type=ViewType.ALL)
                runs = self.client.search_runs(
                    [e.experiment_id for e in experiments],
                    filter_string=f"tags.`provenance.run_id` = '{ref.replace(chr(39), '')}'",
                    max_results=1000,
                )
                run_ids = [r.info.run_id for r in runs]
        if not run_ids:
            from provenance.errors import InputError

            raise InputError(None, f"mlflow:{ref}: no run carries this pipeline run id")
        os.makedirs(dest, exist_ok=True)
        for n, run_id in enumerate(run_ids):
            got = self.download_links(run_id, os.path.join(dest, f".run{n}"))
            for name in os.listdir(got):
                shutil.move(os.path.join(got, name), os.path.join(dest, name))
        return dest


if TYPE_CHECKING:  # MlflowRegistry is both seams of gate.registry; mypy checks it fits them.
    _AS_FACTORY: RegistryFactory = MlflowRegistry

    def _as_registry(registry: MlflowRegistry) -> Registry:
        return registry
