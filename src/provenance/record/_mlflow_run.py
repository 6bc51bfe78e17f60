"""The active MLflow run, seen from a step: its id, its parent, and the link sink it offers.

mlflow is never imported here: all of this applies only when the program already uses mlflow
(it is in `sys.modules`), so recording stays light for everybody else. Links travel with the run
as artifacts under ``provenance/links/``; the MLflow adapter (`provenance.gate.mlflow`) reads
them back from there.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from provenance.record.sinks import StoredLink

LINKS_ARTIFACT_DIR = "provenance/links"


def _active_run() -> Any:
    mlflow = sys.modules.get("mlflow")
    return None if mlflow is None else mlflow.active_run()


def active_run_id() -> str | None:
    """The active MLflow run's id; None when there is none or the program does not use mlflow."""
    run = _active_run()
    return None if run is None else str(run.info.run_id)


def parent_run_id() -> str | None:
    """The parent of the active MLflow run, when the active run is nested."""
    run = _active_run()
    if run is None:
        return None
    parent = run.data.tags.get("mlflow.parentRunId")
    return str(parent) if parent else None


class MlflowRunSink:
    """Logs each link into the MLflow run active when its step finished, and tags the run.

    A link whose environment names no MLflow run is not this sink's.
    """

    def store(self, link: StoredLink) -> str | None:
        """Log `link` under the run's ``provenance/links/``; tag the step and pipeline run."""
        run_id = link.environment.get("mlflow_run_id")
        if not run_id:
            return None
        mlflow = sys.modules["mlflow"]  # the run id was read from it when the link was made
        mlflow.log_artifact(link.path, artifact_path=LINKS_ARTIFACT_DIR)
        mlflow.set_tags(
            {
                "provenance.step": link.step,
                "provenance.run_id": str(link.environment["pipeline_run_id"]),
            }
        )
        return f"mlflow run {run_id}"
