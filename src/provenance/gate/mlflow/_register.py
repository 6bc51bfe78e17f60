"""Register plain model files (no MLflow flavor) as a new model version, with their links."""

from __future__ import annotations

import posixpath
from collections.abc import Mapping, Sequence
from typing import Any

from provenance.gate.mlflow import _client
from provenance.gate.registry import Registered
from provenance.record import MLFLOW_LINKS_ARTIFACT_DIR

EVIDENCE_ARTIFACT_DIR = "provenance/evidence"
"""Run artifacts the gate reads beside the links: other steps' products (metrics) by path."""


def register_files(
    name: str,
    path: str,
    *,
    links_dir: str | None = None,
    run_id: str | None = None,
    tracking_uri: str | None = None,
    evidence: Sequence[str] = (),
) -> Registered:
    """Log `path` (a directory) as run artifacts and create a model version from them.

    The MLflow face of `provenance.gate.register` (kept for existing callers).

    Args:
        name: The registered model (created when missing).
        path: The directory of model files.
        links_dir: Links to log with the run (``provenance/links/``), for `promote`.
        run_id: Log into this existing run instead of a new one.
        tracking_uri: The MLflow server; default MLFLOW_TRACKING_URI.
        evidence: Files (paths relative to the project root, as the links record them, e.g.
            ``metrics/metrics.json``) logged under ``provenance/evidence/<path>`` for the
            layout's thresholds.

    Raises:
        UsageError: `path` is not a directory or an evidence file is not inside the project.
        InfrastructureError: MLflow cannot be reached.
    """
    from provenance.gate._register import register

    return register(
        name, path, links_dir=links_dir, run_id=run_id, evidence=evidence, tracking_uri=tracking_uri
    )


def create_version(
    mc: Any,
    name: str,
    path: str,
    *,
    links_dir: str | None = None,
    evidence: Mapping[str, str] | None = None,
    run_id: str | None = None,
) -> Registered:
    """`MlflowRegistry.create_version` with client `mc`.

    MLflow 3 registers plain files through `create_model_version(source=...)`.
    """
    from mlflow.exceptions import MlflowException

    with _client.mlflow_errors(f"registering '{name}'"):
        own_run = run_id is None
        if run_id is None:
            experiment = mc.get_experiment_by_name("Default")
            run_id = mc.create_run(experiment.experiment_id if experiment else "0").info.run_id
        mc.log_artifacts(run_id, path, artifact_path="model")
        if links_dir:
            mc.log_artifacts(run_id, links_dir, artifact_path=MLFLOW_LINKS_ARTIFACT_DIR)
        for rel, local in (evidence or {}).items():
            where = posixpath.join(EVIDENCE_ARTIFACT_DIR, posixpath.dirname(rel)).rstrip("/")
            mc.log_artifact(run_id, local, artifact_path=where)
        artifact_uri = mc.get_run(run_id).info.artifact_uri
        try:
            mc.get_registered_model(name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_DOES_NOT_EXIST":
                raise
            try:
                mc.create_registered_model(name)
            except MlflowException as raced:
                # Another job registering the first version created it meanwhile.
                if raced.error_code != "RESOURCE_ALREADY_EXISTS":
                    raise
        source = f"{artifact_uri}/model"
        mv = mc.create_model_version(name, source=source, run_id=run_id)
        if own_run:
            mc.set_terminated(run_id)
    return Registered(name, str(mv.version), str(run_id), source)
