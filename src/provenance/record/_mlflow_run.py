"""Links travel with the MLflow run: logged as run artifacts under provenance/links/."""

from __future__ import annotations

import sys
from typing import Any

LINKS_ARTIFACT_DIR = "provenance/links"


def log_link(path: str, step: str, environment: dict[str, Any]) -> None:
    """Log the link into the active MLflow run and tag the run with the step and pipeline run."""
    mlflow = sys.modules["mlflow"]  # only called when the program already uses mlflow
    mlflow.log_artifact(path, artifact_path=LINKS_ARTIFACT_DIR)
    mlflow.set_tags(
        {"provenance.step": step, "provenance.run_id": str(environment["pipeline_run_id"])}
    )
