"""Recording pipeline steps as signed in-toto links.

Two seams for orchestrators and stores: `RunContext` (where the pipeline run id comes from,
`record.context`) and `LinkSink` (where links go besides the links directory, `record.sinks`).
"""

from provenance.record._decorator import step
from provenance.record._lineage import BaseModel, BaseModelRecord, base_models_of
from provenance.record._mlflow_run import LINKS_ARTIFACT_DIR as MLFLOW_LINKS_ARTIFACT_DIR
from provenance.record._recorder import StepSpec
from provenance.record._run_id import links_of_other_runs, start_run
from provenance.record._wrapper import run_step
from provenance.record.context import RunContext, RunId, add_run_context, remove_run_context
from provenance.record.sinks import LinkSink, StoredLink, add_link_sink, remove_link_sink

__all__ = [
    "MLFLOW_LINKS_ARTIFACT_DIR",
    "BaseModel",
    "BaseModelRecord",
    "LinkSink",
    "RunContext",
    "RunId",
    "StepSpec",
    "StoredLink",
    "add_link_sink",
    "add_run_context",
    "base_models_of",
    "links_of_other_runs",
    "remove_link_sink",
    "remove_run_context",
    "run_step",
    "start_run",
    "step",
]
