"""Where the pipeline run id comes from: `RunContext`s asked in order, the first answer wins.

The run id ties the links of one pipeline run together (verification refuses a link from
another run). Built in, in this order:

1. ``PROVENANCE_RUN_ID`` (an orchestrator or a person names the run);
2. contexts added with `add_run_context` (an orchestrator integration: a Kubeflow Pipelines
   run, an Airflow DAG run), newest first;
3. the GitHub Actions run and attempt (``gha:owner/repo/RUN_ID/ATTEMPT``);
4. the parent of the active MLflow run (``mlflow:RUN_ID``), when steps are nested MLflow runs.

When none answers, the workspace decides: the id kept in ``LINKS_DIR/RUN_ID``
(`provenance pipeline start`, or the first step in a fresh links directory).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from provenance import _config
from provenance._github import context as github_context
from provenance.record._mlflow_run import parent_run_id


@dataclass(frozen=True)
class RunId:
    """A pipeline run id and where it came from (named in messages)."""

    value: str
    source: str


class RunContext(Protocol):
    """One place a pipeline run id can come from."""

    def run_id(self) -> RunId | None:
        """The run id this context dictates, or None when it does not apply here."""
        ...


class EnvironmentRunId:
    """``PROVENANCE_RUN_ID``: the run named explicitly; it wins over everything else."""

    def run_id(self) -> RunId | None:
        """The variable's value when it is set and not blank."""
        explicit = (_config.environment("PROVENANCE_RUN_ID") or "").strip()
        return RunId(explicit, "PROVENANCE_RUN_ID") if explicit else None


class GitHubRunId:
    """The GitHub Actions workflow run and attempt this process is part of."""

    def run_id(self) -> RunId | None:
        """``gha:owner/repo/RUN_ID/ATTEMPT`` inside GitHub Actions."""
        gh = github_context()
        return None if gh is None else RunId(gh.pipeline_run_id, "GITHUB_RUN_ID")


class MlflowParentRunId:
    """The parent of the active MLflow run, only if the program already uses mlflow."""

    def run_id(self) -> RunId | None:
        """``mlflow:PARENT_RUN_ID`` when the active run is nested."""
        parent = parent_run_id()
        return None if parent is None else RunId(f"mlflow:{parent}", "MLflow parent run")


_EXPLICIT: RunContext = EnvironmentRunId()
_ADDED: list[RunContext] = []
_DETECTED: tuple[RunContext, ...] = (GitHubRunId(), MlflowParentRunId())


def add_run_context(context: RunContext) -> None:
    """Ask `context` after ``PROVENANCE_RUN_ID`` and before GitHub Actions and MLflow.

    An orchestrator integration calls this once, when it is imported; adding the same context
    again does nothing.
    """
    if context not in _ADDED:
        _ADDED.insert(0, context)


def remove_run_context(context: RunContext) -> None:
    """Stop asking `context` (added with `add_run_context`)."""
    if context in _ADDED:
        _ADDED.remove(context)


def run_contexts() -> list[RunContext]:
    """Every context, in the order they are asked."""
    return [_EXPLICIT, *_ADDED, *_DETECTED]


def dictated_run_id() -> RunId | None:
    """The run id the first context that answers dictates; None when the workspace decides."""
    for context in run_contexts():
        found = context.run_id()
        if found is not None:
            return found
    return None
