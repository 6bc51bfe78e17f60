"""Airflow: the digits DAG run by a real Airflow 3 (scheduler, dag-processor and api-server,
LocalExecutor: each task in its own process), its links gathered and verified by the last task,
the model promoted through the MLflow gate (the orchestrator tests' shared MLflow server).

Started once for this module (SQLite metadata DB in a temporary AIRFLOW_HOME), stopped by PID.
All three DAGs promote to the one model name: only the honest run may register a version.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pytest

from tests.conftest import BIN, FUNCTIONARIES, REPO
from tests.mlflow_server import MlflowServer, free_port
from tests.orchestrator_mlflow import orchestrator_mlflow  # noqa: F401  (shared with KFP)

DAGS = ("digits-honest", "digits-swapped", "digits-replayed")
MODEL = "digits-airflow"

DAG_FILE = '''
import glob, os, shutil, time
from airflow.sdk import task
from examples.airflow_digits.dag import digits_dag
from provenance.integrations._core import run_dir
from provenance.integrations.airflow import Promotion, dag_run_id

ROOT = {root!r}
LINKS = os.path.join(ROOT, "links")
PROMOTION = Promotion(model_name={model!r}, tracking_uri={tracking_uri!r}, gate_key={gate_key!r})

digits_dag("digits-honest", project=os.path.join(ROOT, "digits-honest"), links=LINKS,
           schedule="@once", promotion=PROMOTION)


def swap():
    @task(task_id="swap")
    def swap_weights() -> None:
        """Unrecorded: evaluate gets other weights than train produced."""
        path = os.path.join(ROOT, "digits-swapped", "models", "model.safetensors")
        with open(path, "r+b") as f:
            f.seek(-4, os.SEEK_END)
            f.write(b"\\x00\\x00\\x80\\x3f")
    return swap_weights()


digits_dag("digits-swapped", project=os.path.join(ROOT, "digits-swapped"), links=LINKS,
           schedule="@once", between_train_and_evaluate=swap, promotion=PROMOTION)


def replay():
    @task(task_id="replay")
    def replay_train_link() -> None:
        """Unrecorded: put the honest run's train link in place of this run's."""
        deadline = time.monotonic() + 150
        while not (found := glob.glob(os.path.join(LINKS, "airflow_digits-honest_*", "train.*.link"))):
            if time.monotonic() > deadline:
                raise RuntimeError("the honest run wrote no train link")
            time.sleep(1)
        mine = run_dir(LINKS, dag_run_id())
        shutil.copy(found[0], os.path.join(mine, os.path.basename(found[0])))
    return replay_train_link()


digits_dag("digits-replayed", project=os.path.join(ROOT, "digits-replayed"), links=LINKS,
           schedule="@once", between_train_and_evaluate=replay, promotion=PROMOTION)
'''


def _project(root: Path, keys: Path) -> None:
    """The example project; every run's functionaries sign with the same keys (`keys`)."""
    shutil.copytree(REPO / "layouts", root / "layouts")
    shutil.copytree(keys, root / "keys")
    raw = root / "data" / "raw" / "digits.csv.gz"
    raw.parent.mkdir(parents=True)
    raw.write_bytes((resources.files("sklearn.datasets.data") / "digits.csv.gz").read_bytes())
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
        cwd=root,
        check=True,
        capture_output=True,
    )


@dataclass
class Airflow:
    home: Path
    root: Path
    states: dict[str, str]
    mlflow: MlflowServer

    def verify_log(self, dag_id: str) -> str:
        logs = list((self.home / "logs" / f"dag_id={dag_id}").glob("run_id=*/task_id=verify/*"))
        return "\n".join(p.read_text(errors="replace") for p in logs if p.is_file())

    def task_pids(self, dag_id: str) -> dict[str, int]:
        """The process each task instance ran in (Airflow records it)."""
        with sqlite3.connect(self.home / "airflow.db") as db:
            query = "select task_id, pid from task_instance where dag_id = ?"
            return dict(db.execute(query, (dag_id,)).fetchall())

    def run_id(self, dag_id: str) -> str:
        """The pipeline run id of the DAG's (only) run: ``airflow:DAG_ID/RUN_ID``."""
        with sqlite3.connect(self.home / "airflow.db") as db:
            query = "select run_id from dag_run where dag_id = ?"
            ((run,),) = db.execute(query, (dag_id,)).fetchall()
        return f"airflow:{dag_id}/{run}"

    def versions(self) -> dict[str, str]:
        """Every registered version of MODEL -> the run that logged it; and the aliases."""
        from mlflow import MlflowClient

        client = MlflowClient(self.mlflow.uri)
        return {v.version: v.run_id for v in client.search_model_versions(f"name = '{MODEL}'")}

    def champion(self) -> str:
        from mlflow import MlflowClient

        client = MlflowClient(self.mlflow.uri)
        return str(client.get_model_version_by_alias(MODEL, "champion").version)

    def run_links(self, dag_id: str) -> list[str]:
        (run,) = (self.root / "links").glob(f"airflow_{dag_id}_*")
        return sorted(p.name.split(".")[0] for p in run.glob("*.link"))


@pytest.fixture(scope="module")
def airflow(
    tmp_path_factory: pytest.TempPathFactory,
    orchestrator_mlflow: MlflowServer,  # noqa: F811
) -> Iterator[Airflow]:
    home = tmp_path_factory.mktemp("airflow")
    root = tmp_path_factory.mktemp("digits")
    from provenance.signing import generate

    keys = tmp_path_factory.mktemp("keys")
    for name in (*FUNCTIONARIES, "owner"):
        generate(name, str(keys))
    gate = tmp_path_factory.mktemp("gate")
    generate("gate", str(gate))
    for dag_id in DAGS:
        _project(root / dag_id, keys)
    (home / "dags").mkdir()
    (home / "dags" / "digits.py").write_text(
        DAG_FILE.format(
            root=str(root),
            model=MODEL,
            tracking_uri=orchestrator_mlflow.uri,
            gate_key=str(gate / "gate"),
        )
    )
    port = free_port()
    env = {
        **{
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("AIRFLOW", "PROVENANCE_", "MLFLOW_"))
        },
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPATH": str(REPO),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "False",
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__API__HOST": "127.0.0.1",
        "AIRFLOW__API__PORT": str(port),
        "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{port}/execution/",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__CORE__DAGBAG_IMPORT_TIMEOUT": "120",
        # A loaded machine answers slowly: a task that gives up on the api-server after the
        # default 5 s fails before it ran (seen while MLflow promoted in another task).
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
        "AIRFLOW__WORKERS__EXECUTION_API_RETRIES": "10",
        "MLFLOW_DISABLE_TELEMETRY": "true",
    }
    airflow_bin = str(Path(sys.executable).parent / "airflow")
    subprocess.run([airflow_bin, "db", "migrate"], env=env, check=True, capture_output=True)
    procs = []
    for command in ("api-server", "dag-processor", "scheduler"):
        log = (home / f"{command}.log").open("ab")
        procs.append(
            subprocess.Popen(
                [airflow_bin, command],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
    try:
        states: dict[str, str] = {}
        deadline = time.monotonic() + 420
        while time.monotonic() < deadline:
            with sqlite3.connect(home / "airflow.db") as db:
                states = dict(db.execute("select dag_id, state from dag_run").fetchall())
            if len(states) == len(DAGS) and all(
                s in ("success", "failed") for s in states.values()
            ):
                break
            time.sleep(2)
        yield Airflow(home, root, states, orchestrator_mlflow)
    finally:
        for proc in procs:  # by PID: each command's own process group (its workers included)
            try:
                os.killpg(proc.pid, signal.SIGTERM)
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
            except ProcessLookupError:
                pass


def test_digits_dag_tasks_record_links_and_the_last_task_verifies_and_promotes(
    airflow: Airflow,
) -> None:
    assert airflow.states.get("digits-honest") == "success", airflow.states
    assert airflow.run_links("digits-honest") == ["evaluate", "prepare", "train"]
    pids = airflow.task_pids("digits-honest")
    assert sorted(pids) == ["evaluate", "prepare", "train", "verify"]
    assert len(set(pids.values())) == 4 and os.getpid() not in pids.values(), pids
    log = airflow.verify_log("digits-honest")
    assert re.search(
        r"provenance: PASS: 3 step\(s\) verified against \S*/digits-honest/root.layout, "
        r"pipeline run airflow:",
        log,
    ), log[-3000:]
    assert f"provenance: PROMOTED: {MODEL} version 1 -> @champion" in log, log[-3000:]
    assert list(airflow.versions()) == ["1"] and airflow.champion() == "1"


def assert_nothing_promoted(airflow: Airflow, log: str) -> None:
    """The failed run registered no version and moved no alias (the honest run's stays)."""
    assert "PROMOTED" not in log
    assert list(airflow.versions()) == ["1"] and airflow.champion() == "1"


def test_an_output_swapped_between_tasks_fails_verification_naming_task_and_artifact(
    airflow: Airflow,
) -> None:
    assert airflow.states.get("digits-swapped") == "failed", airflow.states
    log = airflow.verify_log("digits-swapped")
    assert "VerificationError" in log and "PASS" not in log
    assert re.search(r"step 'evaluate'.*models/model\.safetensors", log), log[-3000:]
    assert_nothing_promoted(airflow, log)


def test_a_task_link_from_another_dag_run_is_named_as_such(airflow: Airflow) -> None:
    assert airflow.states.get("digits-replayed") == "failed", airflow.states
    log = airflow.verify_log("digits-replayed")
    assert "PASS" not in log
    honest, replayed = airflow.run_id("digits-honest"), airflow.run_id("digits-replayed")
    assert re.search(
        rf"train \(train\.\w+\.link\): from pipeline run {re.escape(honest)}, "
        rf"not {re.escape(replayed)} like the other links",
        log,
    ), log[-3000:]
    assert_nothing_promoted(airflow, log)
