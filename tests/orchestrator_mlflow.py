"""One `mlflow server` for the orchestrator tests (KFP, Airflow): started once per session.

Each test module imports the `orchestrator_mlflow` fixture; pytest makes one fixture per module
that imports it, so the server itself is kept here and stopped when the last of them is torn
down (at the end of the session). Each module registers models under names of its own.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.mlflow_server import MlflowServer

_shared: dict[str, MlflowServer] = {}
_users: list[int] = [0]


@pytest.fixture(scope="session")
def orchestrator_mlflow(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    if "server" not in _shared:
        _shared["server"] = MlflowServer(tmp_path_factory.mktemp("mlflow")).start()
    _users[0] += 1
    try:
        yield _shared["server"]
    finally:
        _users[0] -= 1
        if not _users[0]:
            _shared.pop("server").stop()
