"""Register plain model files (no MLflow flavor) as a new model version, with their links."""

from __future__ import annotations

import os
import posixpath
import stat
from collections.abc import Sequence
from dataclasses import dataclass

from provenance.errors import UsageError
from provenance.gate.mlflow import _client
from provenance.hashing import is_safe_relative
from provenance.record._mlflow_run import LINKS_ARTIFACT_DIR

EVIDENCE_ARTIFACT_DIR = "provenance/evidence"
"""Run artifacts the gate reads beside the links: other steps' products (metrics) by path."""


@dataclass(frozen=True)
class Registered:
    name: str
    version: str
    run_id: str
    source: str


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

    `evidence` files (paths relative to the project root, as the links record them, e.g.
    `metrics/metrics.json`) are logged under `provenance/evidence/<path>` for the layout's
    thresholds. MLflow 3 registers plain files through `create_model_version(source=...)`.
    """
    if not os.path.isdir(path):
        raise UsageError(f"{path} is not a directory of model files")
    recorded = [_evidence_path(e) for e in evidence]
    from mlflow.exceptions import MlflowException

    mc = _client.client(tracking_uri)
    with _client.mlflow_errors(f"registering '{name}'"):
        own_run = run_id is None
        if run_id is None:
            experiment = mc.get_experiment_by_name("Default")
            run_id = mc.create_run(experiment.experiment_id if experiment else "0").info.run_id
        mc.log_artifacts(run_id, path, artifact_path="model")
        if links_dir:
            mc.log_artifacts(run_id, links_dir, artifact_path=LINKS_ARTIFACT_DIR)
        for local, rel in zip(evidence, recorded, strict=True):
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
    return Registered(name, str(mv.version), run_id, source)


def _evidence_path(local: str) -> str:
    """The recorded (project-relative POSIX) path of evidence file `local`; checked up front so
    a bad argument never leaves a half-registered version."""
    try:
        mode = os.stat(local).st_mode
    except OSError as exc:
        raise UsageError(f"--evidence {local}: {exc.strerror}") from None
    if not stat.S_ISREG(mode):
        raise UsageError(f"--evidence {local}: not a regular file")
    rel = os.path.relpath(os.path.abspath(local)).replace(os.sep, "/")
    if not is_safe_relative(rel):
        raise UsageError(
            f"--evidence {local}: must be inside the current directory (the project root), "
            "where the links record it"
        )
    return rel
