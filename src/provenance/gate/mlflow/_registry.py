"""`Registry` over MLflow's client: every call mapped to the exit-code contract by `_client`."""

from __future__ import annotations

import os
from typing import Any

from provenance.gate.mlflow import _client
from provenance.gate.registry import ModelVersion


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
        self.client = _client.client(tracking_uri)

    def get_version(self, name: str, version: str) -> ModelVersion:
        with _client.mlflow_errors(f"reading model '{name}' version {version}"):
            return _version(self.client.get_model_version(name, version))

    def get_by_alias(self, name: str, alias: str) -> ModelVersion | None:
        from mlflow.exceptions import MlflowException

        with _client.mlflow_errors(f"resolving '{name}@{alias}'"):
            try:
                return _version(self.client.get_model_version_by_alias(name, alias))
            except MlflowException as exc:
                if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE"):
                    return None
                raise

    def download(self, name: str, version: str, dest: str) -> str:
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
        from provenance.record._mlflow_run import LINKS_ARTIFACT_DIR

        with _client.mlflow_errors(f"downloading links of run {run_id}"):
            return str(self.client.download_artifacts(run_id, LINKS_ARTIFACT_DIR, dest))

    def download_evidence(self, run_id: str, dest: str) -> str:
        from provenance.gate.mlflow._register import EVIDENCE_ARTIFACT_DIR

        with _client.mlflow_errors(f"downloading evidence of run {run_id}"):
            if not self.client.list_artifacts(run_id, EVIDENCE_ARTIFACT_DIR):
                os.makedirs(dest, exist_ok=True)
                return dest
            return str(self.client.download_artifacts(run_id, EVIDENCE_ARTIFACT_DIR, dest))

    def set_tag(self, name: str, version: str, key: str, value: str) -> None:
        with _client.mlflow_errors(f"recording '{key}' on '{name}' version {version}"):
            self.client.set_model_version_tag(name, version, key, value)

    def set_alias(self, name: str, alias: str, version: str) -> None:
        with _client.mlflow_errors(f"setting alias '{alias}' on '{name}' version {version}"):
            self.client.set_registered_model_alias(name, alias, version)

    def delete_alias(self, name: str, alias: str) -> None:
        with _client.mlflow_errors(f"removing alias '{alias}' of '{name}'"):
            self.client.delete_registered_model_alias(name, alias)

    def gather_links(self, ref: str, dest: str) -> str:
        """Every link of one pipeline run into `dest`: `ref` is an MLflow run id, or a pipeline
        run id that the runs carry as tag `provenance.run_id`. Nothing is trusted here; `verify`
        checks each link's signature before reading it."""
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
