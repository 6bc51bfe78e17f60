"""Links kept in an object store (the stack's real S3, SeaweedFS): the sink and the links source.

Tasks on machines that share no filesystem store their links under ``s3://bucket/prefix/<run>/``
(`ObjectStoreSink`, chosen by the location's scheme); `provenance verify --links s3://…/RUN`
downloads only the layout's links into a private directory and verifies them as a local one.
Every attack asserts the refusal, its exit code, and that nothing was verified or promoted.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from provenance.errors import InputError, VerificationError
from provenance.integrations._core import RunLinksSink, run_dir, verify_run
from provenance.record import add_link_sink, remove_link_sink
from provenance.record.sinks import CopySink, ObjectStoreSink, sink_for
from tests.conftest import BIN, FUNCTIONARIES, THREE_STEPS, Result
from tests.stack_fixture import Stack

pytestmark = pytest.mark.stack

BUCKET = "mlflow"
S3_ENV = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION")
S3_ENV += ("MLFLOW_S3_ENDPOINT_URL",)
STEPS = ("prepare", "train", "evaluate")
WRITE = "import os, sys; os.makedirs(sys.argv[1], exist_ok=True); open(sys.argv[2], 'w').write('x')"
RECORD = {
    "prepare": ("keys/data-eng", ["-p", "data/**"], ["data", "data/d.txt"]),
    "train": ("keys/trainer", ["-m", "data/**", "-p", "models/**"], ["models", "models/m"]),
    "evaluate": ("keys/trainer", ["-m", "models/**"], []),
}


class Store:
    """A project whose steps keep their links under one fresh prefix of the stack's bucket."""

    def __init__(self, root: Path, stack: Stack, cli: Callable[..., Result]) -> None:
        import boto3
        from botocore.config import Config

        self.root, self.cli = root, cli
        self.prefix = f"links-test/{uuid.uuid4().hex[:12]}"
        self.links_root = f"s3://{BUCKET}/{self.prefix}"
        env = stack.env
        self.s3 = boto3.client(
            "s3",
            endpoint_url=env["MLFLOW_S3_ENDPOINT_URL"],
            aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
            region_name=env["AWS_DEFAULT_REGION"],
            config=Config(s3={"addressing_style": "path"}),
        )

    def location(self, run: str) -> str:
        return run_dir(self.links_root, run)

    def record(self, run: str, steps: tuple[str, ...] = STEPS) -> Result:
        """Run `steps` as pipeline run `run`, each link also stored by the run's S3 sink."""
        os.environ["PROVENANCE_RUN_ID"] = run
        sink = RunLinksSink(self.links_root, run)
        add_link_sink(sink)
        try:
            for step in steps:
                key, patterns, write = RECORD[step]
                command = [sys.executable, "-c", WRITE, *write] if write else ["true"]
                r = self.cli("run", step, *patterns, "--key", key, "--", *command)
                if r.code != 0:
                    return r
            return r
        finally:
            remove_link_sink(sink)
            del os.environ["PROVENANCE_RUN_ID"]

    def keys(self, run: str) -> dict[str, bytes]:
        """Object name under the run's prefix -> its bytes."""
        prefix = self.location(run).removeprefix(f"s3://{BUCKET}/") + "/"
        listed = self.s3.list_objects_v2(Bucket=BUCKET, Prefix=prefix).get("Contents", [])
        return {
            o["Key"][len(prefix) :]: self.s3.get_object(Bucket=BUCKET, Key=o["Key"])["Body"].read()
            for o in listed
        }

    def key(self, run: str, name: str) -> str:
        return self.location(run).removeprefix(f"s3://{BUCKET}/") + "/" + name

    def put(self, run: str, name: str, body: bytes) -> None:
        self.s3.put_object(Bucket=BUCKET, Key=self.key(run, name), Body=body)

    def verify(self, location: str) -> Result:
        return self.cli(
            "verify", "--layout", "root.layout", "--layout-key", "keys/owner.pub",
            "--links", location,
        )  # fmt: skip

    def link_name(self, step: str) -> str:
        (path,) = (self.root / ".provenance/links").glob(f"{step}.*.link")
        return path.name


@pytest.fixture
def store(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., Result]
) -> Iterator[Store]:
    for name in S3_ENV:
        monkeypatch.setenv(name, stack.env[name])
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.chdir(root)
    for name in (*FUNCTIONARIES, "owner"):
        assert cli("keygen", name, "--dir", "keys").code == 0
    (root / "layout.yaml").write_text(THREE_STEPS)
    assert (
        cli("layout", "sign", "layout.yaml", "--key", "keys/owner", "-o", "root.layout").code == 0
    )
    yield Store(root, stack, cli)


def assert_refused(r: Result, code: int, *needles: str) -> None:
    """Exit `code`, one line on stderr naming `needles`, and no verdict: nothing was verified."""
    assert r.code == code, r.out + r.err
    lines = [line for line in r.err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, r.err
    for needle in needles:
        assert needle in lines[0], lines[0]
    assert "PASS" not in r.out and "FAIL" not in r.out, r.out


def test_sink_is_chosen_by_the_scheme_of_its_location(tmp_path: Path) -> None:
    assert sink_for("s3://bucket/links/run-1") == ObjectStoreSink("s3://bucket/links/run-1")
    assert sink_for(str(tmp_path)) == CopySink(str(tmp_path))
    with pytest.raises(InputError, match=r"'\.\.' segment"):
        sink_for("s3://bucket/links/../other")


def test_task_links_stored_in_s3_verify_from_the_store_alone(store: Store) -> None:
    run = "airflow:digits/manual__2026-12-07T03:00:00+00:00"
    assert store.record(run).code == 0
    local = {p.name: p.read_bytes() for p in (store.root / ".provenance/links").glob("*.link")}
    assert store.keys(run) == local and len(local) == 3  # each link byte for byte, nothing else
    shutil.rmtree(store.root / ".provenance/links")  # only the store holds them now

    r = store.verify(store.location(run))
    assert r.code == 0, r.out + r.err
    assert "PASS: 3 step(s) verified" in r.out, r.out


def test_a_link_of_another_run_is_never_overwritten_by_the_sink(store: Store) -> None:
    # Two run ids that differ only where a key cannot hold them name one run directory.
    first, second = "nightly/7", "nightly_7"
    assert store.location(first) == store.location(second)
    assert store.record(first, ("prepare",)).code == 0
    before = store.keys(first)

    r = store.record(second, ("prepare",))
    assert r.code == 3, r.out + r.err
    assert "holds a link of pipeline run nightly/7" in r.err and "nightly_7" in r.err, r.err
    assert store.keys(first) == before  # the other run's link is unchanged

    # A retried task of the same run replaces its own earlier link.
    assert store.record(first, ("prepare",)).code == 0


def test_planted_link_of_another_run_fails_naming_that_run(store: Store) -> None:
    current, other = "kfp:run-current", "kfp:run-other"
    assert store.record(other, ("prepare", "train")).code == 0
    theirs = store.keys(other)[store.link_name("train")]
    assert store.record(current).code == 0
    store.put(current, store.link_name("train"), theirs)  # overwritten by someone with access

    r = store.verify(store.location(current))
    assert r.code == 1, r.out + r.err
    assert "PASS" not in r.out
    assert f"from pipeline run {other}, not {current}" in r.out, r.out


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("sub/train.0123abcd.link", "is not <step>.<keyid[:8]>.link"),
        ("train.0123ABCD.link", "is not <step>.<keyid[:8]>.link"),
        ("..train.0123abcd.link", "names step '..train', not one of the layout"),
        ("notes.txt", "is not <step>.<keyid[:8]>.link"),
        ("RUN_ID", "is not <step>.<keyid[:8]>.link"),
        ("train.0123abcd.link.tmp", "is not <step>.<keyid[:8]>.link"),
        ("deploy.0123abcd.link", "names step 'deploy', not one of the layout"),
    ],
)
def test_an_object_not_named_for_a_layout_step_refuses_the_run(
    store: Store, name: str, why: str
) -> None:
    run = "kfp:run-named"
    assert store.record(run).code == 0
    store.put(run, name, b"{}")
    assert name in store.keys(run)
    r = store.verify(store.location(run))
    assert_refused(r, 3, store.location(run), why)
    assert repr(name)[1:-1] in r.err or name in r.err, r.err


def test_a_dot_dot_name_cannot_be_planted_and_nothing_outside_the_run_is_read(
    store: Store,
) -> None:
    """SeaweedFS refuses keys with a '..' segment or a backslash; objects beside the run (same
    key prefix, another directory) are never listed or read."""
    from botocore.exceptions import ClientError

    run = "kfp:run-traversal"
    assert store.record(run).code == 0
    for name in ("../train.0123abcd.link", "..\\train.0123abcd.link"):
        with pytest.raises(ClientError, match="InvalidRequest"):
            store.put(run, name, b"{}")
    outside = store.location(run).removeprefix(f"s3://{BUCKET}/")  # 'prefix/RUN' + suffix
    store.s3.put_object(Bucket=BUCKET, Key=outside + "-other/train.0123abcd.link", Body=b"{}")
    store.s3.put_object(Bucket=BUCKET, Key=outside + ".0123abcd.link", Body=b"{}")
    r = store.verify(store.location(run))
    assert r.code == 0 and "PASS: 3 step(s) verified" in r.out, r.out + r.err


def test_an_oversized_object_refuses_the_run_before_it_is_read(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    import provenance.links._store as link_store

    run = "kfp:run-oversized"
    assert store.record(run).code == 0
    monkeypatch.setattr(link_store, "MAX_LINK_BYTES", 64 << 10)
    store.put(run, "evaluate.0123abcd.link", b" " * ((64 << 10) + 1))
    r = store.verify(store.location(run))
    assert_refused(r, 3, "evaluate.0123abcd.link", "65537 bytes, over the 65536")


def test_a_run_with_no_links_in_the_store_is_exit_3(store: Store) -> None:
    r = store.verify(store.location("kfp:never-ran"))
    assert_refused(r, 3, "no links under this location")


def test_an_unreachable_store_is_exit_4(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    run = "kfp:run-unreachable"
    assert store.record(run).code == 0
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", f"http://127.0.0.1:{closed}")
    r = store.verify(store.location(run))
    assert_refused(r, 4, "S3", "unreachable")
    r = store.record(run, ("prepare",))  # the sink's write fails too
    assert r.code == 4 and "S3" in r.err and "unreachable" in r.err, r.err


def test_orchestrator_verify_gathers_from_s3_and_promotes_nothing_after_a_refusal(
    store: Store, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow import MlflowClient

    from provenance.integrations._core import Promotion

    for name in ("MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_USERNAME", "MLFLOW_TRACKING_PASSWORD"):
        monkeypatch.setenv(name, stack.env[name])
    run, other = "kfp:run-orchestrated", "kfp:run-earlier"
    assert store.record(other, ("prepare",)).code == 0
    prepare = store.link_name("prepare")
    stale = store.keys(other)[prepare]
    assert store.record(run).code == 0
    shutil.rmtree(store.root / ".provenance/links")
    common: dict[str, Any] = {
        "layout": "root.layout",
        "layout_key": "keys/owner.pub",
        "links": store.links_root,
        "run_id": run,
        "artifacts": {"data": str(store.root / "data"), "models": str(store.root / "models")},
    }
    assert verify_run(**common).verification.ok  # gathered from S3 alone

    model = f"links-refused-{uuid.uuid4().hex[:8]}"
    promotion = Promotion(model, stack.env["MLFLOW_TRACKING_URI"], gate_key="unused")
    store.put(run, "notes.txt", b"not a link")
    with pytest.raises(InputError, match=r"'notes\.txt' is not <step>"):
        verify_run(**common, promotion=promotion)
    store.s3.delete_object(Bucket=BUCKET, Key=store.key(run, "notes.txt"))
    store.put(run, prepare, stale)
    with pytest.raises(VerificationError, match=f"from pipeline run {other}, not {run}"):
        verify_run(**common, promotion=promotion)
    assert not MlflowClient().search_registered_models(f"name = '{model}'")  # nothing promoted


def test_a_provenance_run_bash_task_publishes_its_link_to_s3(store: Store) -> None:
    """The command `airflow.bash_step` builds, run by bash as its BashOperator would: the link
    is written in a private directory, then stored under the DAG run's prefix in S3."""
    # Built in a process of its own: importing Airflow reconfigures logging process-wide (its
    # handlers would keep writing to this test's captured, later closed, stderr).
    build = (
        "import sys; from provenance.integrations.airflow import bash_step; "
        "print(bash_step('prepare', 'mkdir -p data && echo x > data/d.txt', "
        "key='keys/data-eng', links=sys.argv[1], cwd=sys.argv[2], "
        "products=['data/**']).bash_command)"
    )
    built = subprocess.run(
        [sys.executable, "-c", build, store.links_root, str(store.root)],
        capture_output=True,
        text=True,
        check=True,
    )
    bash_command = built.stdout.rstrip("\n")
    run = "airflow:digits/manual__2026-12-07T03:00:00+00:00"
    env = {
        **os.environ,
        "PROVENANCE_RUN_ID": run,
        "PATH": f"{BIN}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    done = subprocess.run(
        ["bash", "-c", bash_command], cwd=store.root, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    (name,) = store.keys(run)
    assert name.startswith("prepare.") and name.endswith(".link")
    assert not (store.root / ".provenance").exists()  # recorded in a temporary directory
