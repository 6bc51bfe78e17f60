"""Kubeflow Pipelines: the digits pipeline under KFP's local runner, each component its own
process with only its inputs; links gathered from the run's directory, verified, promoted.

No `from __future__ import annotations`: KFP reads the component annotations as types.
"""

import re
import shutil
import subprocess
import uuid
from importlib import resources
from pathlib import Path

import pytest
from examples.kfp_digits import pipeline as example
from kfp import dsl, local
from kfp.dsl import Dataset, Input, Model, Output

from tests.conftest import BIN, FUNCTIONARIES, REPO
from tests.mlflow_server import MlflowServer
from tests.orchestrator_mlflow import orchestrator_mlflow  # noqa: F401  (shared with Airflow)
from tests.stack_fixture import Stack

pytestmark = pytest.mark.mlflow


@pytest.fixture
def server(orchestrator_mlflow: MlflowServer) -> MlflowServer:  # noqa: F811
    return orchestrator_mlflow


@pytest.fixture
def kfp_project(tmp_path: Path) -> Path:
    """The example's layout signed, its keys and raw data; KFP's local runner (a process a task).

    Built without the in-process `cli` fixture: the components' output is read with capfd.
    """
    from provenance.signing import generate

    project = tmp_path / "project"
    shutil.copytree(REPO / "layouts", project / "layouts")
    raw = project / "data" / "raw" / "digits.csv.gz"
    raw.parent.mkdir(parents=True)
    raw.write_bytes((resources.files("sklearn.datasets.data") / "digits.csv.gz").read_bytes())
    for name in (*FUNCTIONARIES, "owner"):
        generate(name, str(project / "keys"))
    generate("gate", str(project / "gate"))
    subprocess.run(
        [
            str(BIN / "provenance"),
            "layout",
            "sign",
            "layouts/train.yaml",
            "--key",
            "keys/owner",
            "-o",
            "root.layout",
        ],
        cwd=project,
        check=True,
        capture_output=True,
    )
    local.init(
        runner=local.SubprocessRunner(use_venv=False),
        pipeline_root=str(tmp_path / "kfp-root"),
        raise_on_error=True,
    )
    return project


def _args(root: Path) -> dict[str, str]:
    return {
        "links": str(root / "run-links"),
        "keys": str(root / "keys"),
        "layout": str(root / "root.layout"),
        "layout_key": str(root / "keys" / "owner.pub"),
    }


def _run_dirs(root: Path) -> list[Path]:
    return sorted((root / "run-links").iterdir())


def test_digits_pipeline_components_record_links_verified_and_model_promoted(
    kfp_project: Path, server: MlflowServer, capfd: pytest.CaptureFixture[str]
) -> None:
    from mlflow import MlflowClient

    raw = str(kfp_project / "data" / "raw" / "digits.csv.gz")
    example.digits(
        raw_uri=raw,
        tracking_uri=server.uri,
        gate_key=str(kfp_project / "gate" / "gate"),
        **_args(kfp_project),
    )
    (run,) = _run_dirs(kfp_project)
    assert sorted(p.name.split(".")[0] for p in run.glob("*.link")) == [
        "evaluate",
        "prepare",
        "train",
    ]
    out = capfd.readouterr().out
    assert re.search(r"provenance: PASS: 3 step\(s\) verified .* pipeline run kfp:\d+", out), out
    assert "provenance: PROMOTED: digits version 1 -> @champion" in out
    version = MlflowClient(server.uri).get_model_version_by_alias("digits", "champion")
    assert version.version == "1"


@dsl.component
def swap(model: Input[Model], swapped: Output[Model]) -> None:
    """An unrecorded task between train and evaluate hands evaluate other weights."""
    import os
    import shutil

    shutil.copytree(model.path, swapped.path)
    with open(os.path.join(swapped.path, "model.safetensors"), "r+b") as f:
        f.seek(-4, os.SEEK_END)
        f.write(b"\x00\x00\x80\x3f")


@dsl.component
def replay(links: str, from_dir: str, run_id: str) -> None:
    """Put another run's train link in place of this run's (same step, same key)."""
    import glob
    import os
    import shutil

    (theirs,) = glob.glob(os.path.join(from_dir, "train.*.link"))
    shutil.copy(theirs, os.path.join(links, f"kfp_{run_id}", os.path.basename(theirs)))


@dsl.pipeline(name="digits-swapped")
def swapped_pipeline(
    raw_uri: str,
    links: str,
    keys: str,
    layout: str,
    layout_key: str,
    tracking_uri: str,
    gate_key: str,
) -> None:
    run_id = dsl.PIPELINE_JOB_ID_PLACEHOLDER
    raw = dsl.importer(artifact_uri=raw_uri, artifact_class=Dataset, reimport=False)
    p = example.prepare(raw=raw.output, run_id=run_id, links=links, keys=keys)
    t = example.train(processed=p.outputs["processed"], run_id=run_id, links=links, keys=keys)
    s = swap(model=t.outputs["model"])
    e = example.evaluate(
        model=s.outputs["swapped"],
        processed=p.outputs["processed"],
        run_id=run_id,
        links=links,
        keys=keys,
    )
    example.verify(
        processed=p.outputs["processed"],
        model=t.outputs["model"],
        metrics=e.outputs["metrics"],
        run_id=run_id,
        links=links,
        layout=layout,
        layout_key=layout_key,
        tracking_uri=tracking_uri,
        gate_key=gate_key,
        model_name="digits-attacked",
    )


@dsl.pipeline(name="digits-replayed")
def replayed_pipeline(
    raw_uri: str,
    links: str,
    keys: str,
    layout: str,
    layout_key: str,
    from_dir: str,
    tracking_uri: str,
    gate_key: str,
) -> None:
    run_id = dsl.PIPELINE_JOB_ID_PLACEHOLDER
    raw = dsl.importer(artifact_uri=raw_uri, artifact_class=Dataset, reimport=False)
    p = example.prepare(raw=raw.output, run_id=run_id, links=links, keys=keys)
    t = example.train(processed=p.outputs["processed"], run_id=run_id, links=links, keys=keys)
    r = replay(links=links, from_dir=from_dir, run_id=run_id).after(t)
    e = example.evaluate(
        model=t.outputs["model"],
        processed=p.outputs["processed"],
        run_id=run_id,
        links=links,
        keys=keys,
    ).after(r)
    example.verify(
        processed=p.outputs["processed"],
        model=t.outputs["model"],
        metrics=e.outputs["metrics"],
        run_id=run_id,
        links=links,
        layout=layout,
        layout_key=layout_key,
        tracking_uri=tracking_uri,
        gate_key=gate_key,
        model_name="digits-attacked",
    )


def _promotion(root: Path, server: MlflowServer) -> dict[str, str]:
    return {"tracking_uri": server.uri, "gate_key": str(root / "gate" / "gate")}


def _nothing_registered(server: MlflowServer) -> bool:
    from mlflow import MlflowClient

    return not MlflowClient(server.uri).search_registered_models("name = 'digits-attacked'")


def test_an_output_swapped_between_components_fails_verification_naming_task_and_artifact(
    kfp_project: Path, server: MlflowServer, capfd: pytest.CaptureFixture[str]
) -> None:
    raw = str(kfp_project / "data" / "raw" / "digits.csv.gz")
    with pytest.raises(RuntimeError, match="verify"):
        swapped_pipeline(raw_uri=raw, **_args(kfp_project), **_promotion(kfp_project, server))
    out = capfd.readouterr().out
    assert "VerificationError" in out and "PASS" not in out
    assert re.search(r"step 'evaluate'.*models/model\.safetensors", out), out[-3000:]
    assert "PROMOTED" not in out and _nothing_registered(server)


def test_a_link_from_another_pipeline_run_is_named_as_such(
    kfp_project: Path, server: MlflowServer, capfd: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    raw = str(kfp_project / "data" / "raw" / "digits.csv.gz")
    example.digits(raw_uri=raw, **_args(kfp_project))
    (earlier,) = _run_dirs(kfp_project)
    kept = tmp_path / "earlier-run"
    shutil.copytree(earlier, kept)
    other = earlier.name.removeprefix("kfp_")
    capfd.readouterr()
    with pytest.raises(RuntimeError, match="verify"):
        replayed_pipeline(
            raw_uri=raw,
            from_dir=str(kept),
            **_args(kfp_project),
            **_promotion(kfp_project, server),
        )
    out = capfd.readouterr().out
    assert "PASS" not in out and "PROMOTED" not in out and _nothing_registered(server)
    assert re.search(
        rf"train \(train\.\w+\.link\): from pipeline run kfp:{other}, not kfp:\d+", out
    ), out[-3000:]


@pytest.mark.stack
def test_components_sharing_no_filesystem_keep_links_in_s3_verified_and_promoted(
    kfp_project: Path,
    server: MlflowServer,
    stack: Stack,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """The links root is the stack's S3: each component stores its link there, the verify
    component gathers them from there alone (no shared links directory exists)."""
    import boto3
    from botocore.config import Config
    from mlflow import MlflowClient

    env = stack.env
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.setenv(name, env[name])
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", env["MLFLOW_S3_ENDPOINT_URL"])
    prefix = f"kfp-links/{uuid.uuid4().hex[:12]}"
    args = {**_args(kfp_project), "links": f"s3://mlflow/{prefix}"}
    example.digits(
        raw_uri=str(kfp_project / "data" / "raw" / "digits.csv.gz"),
        tracking_uri=server.uri,
        gate_key=str(kfp_project / "gate" / "gate"),
        model_name="digits-s3",
        **args,
    )
    out = capfd.readouterr().out
    assert re.search(r"provenance: PASS: 3 step\(s\) verified .* pipeline run kfp:\d+", out), out
    assert "provenance: PROMOTED: digits-s3 version 1 -> @champion" in out
    assert MlflowClient(server.uri).get_model_version_by_alias("digits-s3", "champion")
    s3 = boto3.client(
        "s3",
        endpoint_url=env["MLFLOW_S3_ENDPOINT_URL"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
        config=Config(s3={"addressing_style": "path"}),
    )
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket="mlflow", Prefix=prefix)["Contents"]]
    assert sorted(k.rsplit("/", 1)[1].split(".")[0] for k in keys) == [
        "evaluate",
        "prepare",
        "train",
    ]
    assert len({k.rsplit("/", 1)[0] for k in keys}) == 1  # one run's directory: kfp_<job id>
    assert not (kfp_project / "run-links").exists()
