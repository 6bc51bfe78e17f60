"""The GitHub Actions run this process is part of, read once from the runner's environment.

One place for what the recorder (pipeline run ids) and the SLSA statement (builder, source,
invocation) take from GitHub, so both always agree.
"""

from __future__ import annotations

import os
from dataclasses import dataclass


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
    env = os.environ
    if env.get("GITHUB_ACTIONS") != "true" or not env.get("GITHUB_RUN_ID"):
        return None
    return GitHubContext(
        server=env.get("GITHUB_SERVER_URL", "https://github.com").rstrip("/"),
        repository=env.get("GITHUB_REPOSITORY", ""),
        run_id=env["GITHUB_RUN_ID"],
        run_attempt=env.get("GITHUB_RUN_ATTEMPT", "1"),
        ref=env.get("GITHUB_REF", ""),
        sha=env.get("GITHUB_SHA", ""),
        workflow_ref=env.get("GITHUB_WORKFLOW_REF", ""),
    )
