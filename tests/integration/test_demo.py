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


def test_summary_shows_the_dataset_manifest_and_what_the_loaders_read(pipeline: Path) -> None:
    from provenance._demo import DemoReport, sign_and_verify
    from provenance.datasets import Dataset

    report = DemoReport(pipeline)
    lines: list[str] = []
    result = sign_and_verify(report, lines.append, "layouts/train.yaml", ".provenance/links")
    assert result.ok
    manifest = Dataset("data/processed").manifest_path
    (link,) = (v.link for s, v in result.links.items() if s == "prepare")
    sha = link.products[manifest]["sha256"]
    size = link.environment["datasets"]["products"][manifest]["bytes"]
    rows = {stage: (outcome, detail) for stage, outcome, detail in report.rows}
    outcome, detail = rows["dataset data/processed"]
    assert outcome == "manifest"
    assert detail == (
        f"4 members, {size:,} bytes; manifest sha256 {sha[:12]}… (prepare); "
        "train read 2 of 4 shards verified; evaluate read 2 of 4 shards verified"
    )
    assert f"  dataset data/processed: {detail}" in lines
    # The row sits between the steps and the verdict.
    stages = [r[0] for r in report.rows]
    assert stages.index("step evaluate") < stages.index("dataset data/processed")
    assert stages.index("dataset data/processed") < stages.index("verify")
    assert rows["verify"][1].endswith("; the members of 1 dataset(s) equal their manifests")
