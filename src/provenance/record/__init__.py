"""Recording pipeline steps as signed in-toto links.

Two seams for orchestrators and stores: `RunContext` (where the pipeline run id comes from,
`record.context`) and `LinkSink` (where links go besides the links directory, `record.sinks`).

Each name is imported from its module on first use (PEP 562): `provenance run` starts hashing
the materials before the link writer, the sinks and the run-id sources are imported.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from provenance._lazy import lazy_names

if TYPE_CHECKING:
    from provenance.record._decorator import step
    from provenance.record._lineage import BaseModel, BaseModelRecord, base_models_of
    from provenance.record._mlflow_run import LINKS_ARTIFACT_DIR as MLFLOW_LINKS_ARTIFACT_DIR
    from provenance.record._recorder import StepSpec
    from provenance.record._run_id import links_of_other_runs, start_run
    from provenance.record._wrapper import run_step
    from provenance.record.context import (
        RunContext,
        RunId,
        add_run_context,
        remove_run_context,
    )
    from provenance.record.sinks import LinkSink, StoredLink, add_link_sink, remove_link_sink

# public name -> (module, name in it)
_LAZY: dict[str, tuple[str, str]] = {
    "step": ("_decorator", "step"),
    "BaseModel": ("_lineage", "BaseModel"),
    "BaseModelRecord": ("_lineage", "BaseModelRecord"),
    "base_models_of": ("_lineage", "base_models_of"),
    "MLFLOW_LINKS_ARTIFACT_DIR": ("_mlflow_run", "LINKS_ARTIFACT_DIR"),
    "StepSpec": ("_recorder", "StepSpec"),
    "links_of_other_runs": ("_run_id", "links_of_other_runs"),
    "start_run": ("_run_id", "start_run"),
    "run_step": ("_wrapper", "run_step"),
    "RunContext": ("context", "RunContext"),
    "RunId": ("context", "RunId"),
    "add_run_context": ("context", "add_run_context"),
    "remove_run_context": ("context", "remove_run_context"),
    "LinkSink": ("sinks", "LinkSink"),
    "StoredLink": ("sinks", "StoredLink"),
    "add_link_sink": ("sinks", "add_link_sink"),
    "remove_link_sink": ("sinks", "remove_link_sink"),
}


__getattr__, __dir__ = lazy_names(__name__, _LAZY)

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
