"""Pipeline run ids: opened per run, derived from CI/orchestrators, links of other runs named."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from tests.conftest import links_in
from tests.unit.test_record import payload

LINKS = Path(".provenance/links")


def run_ids(root: Path) -> dict[str, str]:
    return {
        name.split(".")[0]: payload(root / LINKS / name)["environment"]["pipeline_run_id"]
        for name in links_in(root)
    }


def record(cli, step: str) -> None:
    r = cli("run", step, "--key", "keys/trainer", "--", "true")
    assert r.code == 0, r.err


def test_pipeline_start_opens_a_new_run_that_the_next_steps_record(project: Path, cli) -> None:
    record(cli, "a")
    first = run_ids(project)["a"]
    r = cli("pipeline", "start")
    assert r.code == 0, r.err
    new = r.out.strip()
    assert new and new != first
    assert (project / LINKS / "RUN_ID").read_text().strip() == new
    assert "1 link(s) of earlier runs remain" in r.err
    record(cli, "a")
    record(cli, "b")
    assert run_ids(project) == {"a": new, "b": new}


def test_first_step_in_a_fresh_links_dir_opens_a_run_and_later_steps_join_it(
    project: Path, cli
) -> None:
    assert not (project / LINKS).exists()
    record(cli, "a")
    opened = (project / LINKS / "RUN_ID").read_text().strip()
    record(cli, "b")
    assert run_ids(project) == {"a": opened, "b": opened}


def test_pipeline_start_json_and_links_option(project: Path, cli) -> None:
    r = cli("pipeline", "start", "--links", "evidence", "--json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["links_of_other_runs"] == []
    assert (project / "evidence" / "RUN_ID").read_text().strip() == doc["run_id"]


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"PROVENANCE_RUN_ID": "nightly-7"}, "nightly-7"),
        (
            {
                "GITHUB_ACTIONS": "true",
                "GITHUB_REPOSITORY": "org/repo",
                "GITHUB_RUN_ID": "99",
                "GITHUB_RUN_ATTEMPT": "2",
            },
            "gha:org/repo/99/2",
        ),
    ],
)
def test_run_id_derives_from_the_orchestrator_and_writes_no_file(
    project: Path, cli, monkeypatch, env: dict[str, str], expected: str
) -> None:
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    r = cli("pipeline", "start")
    assert r.code == 0 and r.out.strip() == expected
    record(cli, "a")
    assert run_ids(project) == {"a": expected}
    assert not (project / LINKS / "RUN_ID").exists()


def test_nested_mlflow_runs_share_the_parent_run_id(project: Path, tmp_path: Path) -> None:
    import mlflow

    import provenance

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")

    @provenance.step("s", key="keys/trainer")
    def s() -> None: ...

    try:
        with mlflow.start_run() as parent:
            for _ in range(2):
                with mlflow.start_run(nested=True):
                    s()
    finally:
        mlflow.set_tracking_uri(None)
    assert run_ids(project) == {"s": f"mlflow:{parent.info.run_id}"}


def test_step_names_links_of_another_run_in_its_folder(project: Path, cli, caplog) -> None:
    record(cli, "a")
    old = run_ids(project)["a"]
    assert cli("pipeline", "start").code == 0
    caplog.set_level(logging.WARNING, logger="provenance")
    record(cli, "b")
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "step 'b'" in warning and f"a.{links_in(project)[0].split('.')[1]}.link" in warning
    assert f"(run {old})" in warning


def test_rerunning_a_step_in_an_old_run_suggests_pipeline_start(project: Path, cli, caplog) -> None:
    record(cli, "a")
    caplog.set_level(logging.WARNING, logger="provenance")
    record(cli, "a")
    (warning,) = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "already recorded in run" in warning and "provenance pipeline start" in warning


def test_garbled_run_id_file_is_one_line_exit_3(project: Path, cli) -> None:
    (project / LINKS).mkdir(parents=True)
    (project / LINKS / "RUN_ID").write_bytes(b"\x00\x01" * 300)
    r = cli("run", "a", "--key", "keys/trainer", "--", "true")
    assert r.code == 3 and "RUN_ID" in r.err and len(r.err.strip().splitlines()) == 1
    assert links_in(project) == []


def test_required_run_id_refuses_a_step_that_would_open_its_own_run(
    project: Path, cli, monkeypatch
) -> None:
    """Jobs on separate machines: a step with no run id from outside is refused, not guessed."""
    monkeypatch.setenv("PROVENANCE_REQUIRE_RUN_ID", "true")
    r = cli("run", "a", "--key", "keys/trainer", "--", "touch", "ran")
    assert r.code == 2
    assert "no pipeline run id (require_run_id is set)" in r.err
    assert "PROVENANCE_RUN_ID" in r.err
    assert links_in(project) == []
    assert not (project / "ran").exists()
    assert not (project / LINKS / "RUN_ID").exists()

    monkeypatch.setenv("PROVENANCE_RUN_ID", "shared-7")
    record(cli, "a")
    assert run_ids(project) == {"a": "shared-7"}


def test_required_run_id_accepts_pipeline_start(project: Path, cli) -> None:
    (project / "pyproject.toml").write_text("[tool.provenance]\nrequire_run_id = true\n")
    opened = cli("pipeline", "start")
    assert opened.code == 0, opened.err
    record(cli, "a")
    assert run_ids(project) == {"a": opened.out.strip()}


def test_unclear_require_run_id_value_is_refused(project: Path, cli, monkeypatch) -> None:
    monkeypatch.setenv("PROVENANCE_REQUIRE_RUN_ID", "maybe")
    r = cli("run", "a", "--key", "keys/trainer", "--", "true")
    assert r.code == 3
    assert "PROVENANCE_REQUIRE_RUN_ID: 'maybe' is not yes or no" in r.err
    assert links_in(project) == []


def test_step_logging_to_mlflow_that_opens_a_run_says_so(
    project: Path, tmp_path: Path, caplog
) -> None:
    """A step pushing its link to a server names the new id other jobs must be given."""
    import mlflow

    import provenance

    mlflow.set_tracking_uri(f"sqlite:///{tmp_path / 'mlflow.db'}")

    @provenance.step("s", key="keys/trainer")
    def s() -> None: ...

    try:
        with caplog.at_level(logging.WARNING, logger="provenance"), mlflow.start_run():
            s()
    finally:
        mlflow.set_tracking_uri(None)
    opened = run_ids(project)["s"]
    assert f"opened a new pipeline run {opened}" in caplog.text
    assert f"PROVENANCE_RUN_ID={opened}" in caplog.text
