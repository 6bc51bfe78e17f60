"""`provenance stack`: a local production-like MLflow for demos and integration tests.

PostgreSQL + S3 + basic auth + the gate's registry plugin, and probes of the servers a
deployment uses.
"""

from __future__ import annotations

from provenance.stack._check import Target, check, check_mlflow, check_postgres, check_s3
from provenance.stack._stack import (
    CRASHED,
    RUNNING,
    STOPPED,
    Timing,
    default_dir,
    document,
    down,
    states,
    status,
    up,
)
from provenance.stack._state import COMPONENTS, State


def target_for(state: State) -> Target:
    """The probe target of a local stack, with the gate's identity and the database password."""
    from provenance.stack import _mlflow, _state

    doc = document(state)
    sec = _state.secrets_for(state.directory)
    env = doc["env"]
    pg_port = state.components["postgresql"].ports.get("postgresql", 0)
    return Target(
        tracking_uri=doc["tracking_uri"],
        username=env["MLFLOW_TRACKING_USERNAME"],
        password=env["MLFLOW_TRACKING_PASSWORD"],
        s3_endpoint=doc["s3_endpoint"],
        bucket=doc["bucket"],
        access_key=env["AWS_ACCESS_KEY_ID"],
        secret_key=env["AWS_SECRET_ACCESS_KEY"],
        backend_store_uri=_mlflow.store_uri(pg_port, sec["postgres_password"]),
    )


__all__ = [
    "COMPONENTS",
    "CRASHED",
    "RUNNING",
    "STOPPED",
    "State",
    "Target",
    "Timing",
    "check",
    "check_mlflow",
    "check_postgres",
    "check_s3",
    "default_dir",
    "document",
    "down",
    "states",
    "status",
    "target_for",
    "up",
]
