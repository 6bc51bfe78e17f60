"""The GitHub Actions run this process is part of, read once from the runner's environment.

One place for what the recorder (pipeline run ids) and the SLSA statement (builder, source,
invocation) take from GitHub, so both always agree.
"""

from __future__ import annotations

from dataclasses import dataclass

from provenance import _config


@dataclass(frozen=True)
class GitHubContext:
    server: str  # https://github.com or a GitHub Enterprise host
    repository: str  # ORG/REPO
    run_id: str
    run_attempt: str
    ref: str
    sha: str
    workflow_ref: str  # ORG/REPO/.github/workflows/F.yml@REF

    @property
    def repository_uri(self) -> str:
        return f"{self.server}/{self.repository}"

    @property
    def builder_id(self) -> str:
        return f"{self.server}/{self.workflow_ref or self.repository}"

    @property
    def invocation_id(self) -> str:
        return f"{self.repository_uri}/actions/runs/{self.run_id}/attempts/{self.run_attempt}"

    @property
    def pipeline_run_id(self) -> str:
        return f"gha:{self.repository}/{self.run_id}/{self.run_attempt}"


def context() -> GitHubContext | None:
    """The current workflow run, or None outside GitHub Actions (or without a run id)."""

    def env(name: str, default: str = "") -> str:
        value = _config.environment(name)
        return default if value is None else value

    run_id = env("GITHUB_RUN_ID")
    if env("GITHUB_ACTIONS") != "true" or not run_id:
        return None
    return GitHubContext(
        server=env("GITHUB_SERVER_URL", "https://github.com").rstrip("/"),
        repository=env("GITHUB_REPOSITORY"),
        run_id=run_id,
        run_attempt=env("GITHUB_RUN_ATTEMPT", "1"),
        ref=env("GITHUB_REF"),
        sha=env("GITHUB_SHA"),
        workflow_ref=env("GITHUB_WORKFLOW_REF"),
    )
