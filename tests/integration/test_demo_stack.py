"""`provenance demo --stack D` against the session's stack: separate jobs, links from the server."""

from __future__ import annotations

import base64
import json
import re
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest

from provenance.datasets import Dataset
from provenance.gate.mlflow.demo import MODEL
from tests.conftest import BIN
from tests.integration.test_stack import creds, http
from tests.stack_fixture import Stack, client_env

pytestmark = pytest.mark.stack


def gathered_links(stack: Stack, run_id: str) -> dict[str, dict[str, Any]]:
    """The links of pipeline run `run_id` as the server holds them (step -> payload)."""
    env = client_env(stack.env)
    with tempfile.TemporaryDirectory() as tmp:
        script = (
            "import sys; from provenance.gate.mlflow import MlflowRegistry; "
            "MlflowRegistry(None).gather_links(sys.argv[1], sys.argv[2])"
        )
        proc = subprocess.run(
            [str(BIN / "python"), "-c", script, run_id, tmp],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
        assert proc.returncode == 0, proc.stderr
        links = {}
        for path in Path(tmp).glob("*.link"):
            payload = json.loads(base64.b64decode(json.loads(path.read_text())["payload"]))
            links[payload["name"]] = payload
    return links


def test_demo_stack_runs_steps_as_separate_jobs_and_promotes_the_verified_version(
    stack: Stack, tmp_path: Path
) -> None:
    r = subprocess.run(
        [str(BIN / "provenance"), "demo", "--stack", str(stack.dir), "--workdir", "ws", "--json"],
        cwd=tmp_path,
        env=client_env(),
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    doc = json.loads(r.stdout)
    stages = {s["stage"]: s for s in doc["stages"]}
    assert stages["verify"]["outcome"] == "PASS", stages["verify"]
    assert stages["slsa verify"]["outcome"] == "PASS"
    assert stages["tampered version"]["outcome"] == "REFUSED"
    assert stages["verified load"]["outcome"] == "VERIFIED"

    # The alias sits on the version the gate verified, as the server says over raw REST.
    promoted = re.search(r"version (\d+) -> @champion", stages["mlflow promote"]["detail"])
    assert promoted and stages["mlflow promote"]["outcome"] == "PROMOTED"
    status, body = http(
        stack,
        "GET",
        f"/api/2.0/mlflow/registered-models/alias?name={MODEL}&alias=champion",
        creds(stack.env),
    )
    assert status == 200, body
    version = body["model_version"]
    assert version["version"] == promoted.group(1)
    tags = {t["key"] for t in version.get("tags", [])}
    assert any(t.startswith("provenance.") for t in tags), tags

    # The links came from the server: three steps of one pipeline run, data only as s3:// URIs.
    run = re.search(r"links of run (\w+) from the server", stages["links"]["detail"])
    assert run and stages["links"]["detail"].startswith("3 links")
    links = gathered_links(stack, run.group(1))
    assert sorted(links) == ["evaluate", "prepare", "train"]
    manifest = Dataset("data/processed").manifest_path
    for step, link in links.items():
        assert link["environment"]["pipeline_run_id"] == run.group(1)
        local = [p for kind in ("materials", "products") for p in link[kind] if "://" not in p]
        # Nothing of another step's folder: its script, and the dataset's manifest (a file
        # travelling through S3 beside the objects it lists).
        assert sorted(local) == sorted([f"steps/{step}.py", manifest]), (step, local)
        assert link["environment"]["mlflow_run_id"]

    # prepare recorded the dataset's objects as one manifest; train and evaluate read their
    # shards through the loader, held to it.
    sha = links["prepare"]["products"][manifest]["sha256"]
    described = links["prepare"]["environment"]["datasets"]["products"][manifest]
    assert described["kind"] == "s3" and described["members"] == 4
    assert described["source"].endswith(f"/demo/{run.group(1)}/data/processed")
    for step in ("train", "evaluate"):
        assert links[step]["materials"][manifest]["sha256"] == sha
        read = links[step]["environment"]["datasets"]["read"][sha]
        assert (read["shards_read"], read["members"], read["completed"]) == (2, 4, True)
    row = stages[f"dataset {described['source']}"]
    assert row["outcome"] == "manifest"
    assert f"manifest sha256 {sha[:12]}" in row["detail"]
    assert "train read 2 of 4 shards verified" in row["detail"]

    # Each step ran in a directory of its own, outside the workspace, gone before the next step.
    dirs = [Path(j["dir"]) for j in doc["jobs"]]
    assert [j["step"] for j in doc["jobs"]] == ["prepare", "train", "evaluate"]
    assert len(set(dirs)) == 3
    workspace = tmp_path / "ws"
    for job, d in zip(doc["jobs"], dirs, strict=True):
        assert not d.exists()
        assert workspace not in d.parents
        assert job["earlier_dirs_present"] == []
        key = {"prepare": "data-eng", "train": "trainer", "evaluate": "evaluator"}[job["step"]]
        # A job that reads the dataset also holds the public key its loader trusts.
        trusted = [] if job["step"] == "prepare" else ["keys/data-eng.pub"]
        assert job["files"] == sorted([f"keys/{key}", *trusted, f"steps/{job['step']}.py"])
