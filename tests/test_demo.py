"""The demo's plumbing: packaged example, stages skipped with one line when an extra is missing,
MLflow's own logging quiet unless -v. (The whole story from a wheel is in test_wheel.py.)"""

from __future__ import annotations

import json
import logging
import sys
from pathlib import Path

import pytest

from provenance._demo import _later_stages
from provenance._example import example_project
from tests.conftest import REPO


def test_packaged_example_is_the_repository_pipeline_in_an_editable_install() -> None:
    project = example_project()
    assert project is not None
    assert (project / "steps" / "train.py").read_bytes() == (REPO / "steps/train.py").read_bytes()
    assert (project / "layouts" / "train.yaml").is_file()


def test_mlflow_stage_is_skipped_with_one_line_naming_the_extra(monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # what Python reports for a missing module
    stages = _later_stages()
    assert stages[0].__name__ == "slsa_stage" and len(stages) == 3
    lines: list[str] = []
    rows: list[tuple[str, str, str]] = []

    class Report:
        def add(self, *row: str) -> None:
            rows.append(row)

    stages[-1](Path("."), Report(), lines.append, None)
    assert lines == [
        "mlflow promote: skipped, mlflow is not installed (pip install 'ml-provenance[mlflow]')"
    ]
    assert rows == [("mlflow promote", "skipped", "pip install 'ml-provenance[mlflow]'")]


def test_mlflow_stage_runs_when_mlflow_is_installed() -> None:
    assert _later_stages()[-1].__name__ == "mlflow_stage"


def test_demo_without_the_example_extra_says_what_to_install(
    tmp_path: Path, cli, monkeypatch
) -> None:
    monkeypatch.setitem(sys.modules, "safetensors", None)
    monkeypatch.chdir(tmp_path)
    r = cli("demo")
    assert r.code == 0, r.err
    assert r.out.strip() == (
        "demo: skipped, the example pipeline needs safetensors "
        "(pip install 'ml-provenance[example]')"
    )
    assert list(tmp_path.iterdir()) == []
    doc = json.loads(cli("demo", "--json").out)
    assert doc["stages"][0]["outcome"] == "skipped"


@pytest.mark.parametrize(("flags", "level"), [((), "WARNING"), (("-v",), "INFO")])
def test_mlflow_info_logging_is_shown_only_with_verbose(
    tmp_path: Path, cli, monkeypatch, flags: tuple[str, ...], level: str
) -> None:
    import mlflow  # noqa: F401 - already loaded: its logger level is set directly

    monkeypatch.delenv("MLFLOW_LOGGING_LEVEL", raising=False)
    before = logging.getLogger("mlflow").level
    try:
        assert cli(*flags, "keygen", "k", "--dir", tmp_path).code == 0
        assert logging.getLogger("mlflow").level == logging.getLevelName(level)
        import os

        assert os.environ["MLFLOW_LOGGING_LEVEL"] == level
    finally:
        logging.getLogger("mlflow").setLevel(before)


def test_a_level_the_user_chose_is_kept(tmp_path: Path, cli, monkeypatch) -> None:
    monkeypatch.setenv("MLFLOW_LOGGING_LEVEL", "DEBUG")
    assert cli("keygen", "k", "--dir", tmp_path).code == 0
    import os

    assert os.environ["MLFLOW_LOGGING_LEVEL"] == "DEBUG"
