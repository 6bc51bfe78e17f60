"""The Ray engine on a real two-node cluster (tests/ray_cluster.py, started once per session).

Differential: the Ray engine's manifest is byte-for-byte the local engine's, for local files
and for objects on the stack's S3. A member that cannot be read fails the whole manifest by
name and writes nothing; a worker killed mid-batch is retried by Ray; without Ray installed,
`--engine ray` names the extra to install (exit 2).
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.conftest import Result
from tests.integration.test_objects import s3_client
from tests.ray_cluster import RayCluster, ray_env, running_cluster
from tests.stack_fixture import Stack

TASK = "hash_dataset_batch"


@pytest.fixture(scope="module")  # stopped before other modules count their child processes
def ray_cluster() -> Iterator[RayCluster]:
    with running_cluster() as cluster:
        yield cluster


@pytest.fixture
def on_cluster(ray_cluster: RayCluster, monkeypatch: pytest.MonkeyPatch) -> RayCluster:
    monkeypatch.setenv("RAY_ADDRESS", ray_cluster.address)
    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")
    return ray_cluster


def tree(root: Path, n: int = 300) -> Path:
    for i in range(n):
        d = root / f"part-{i % 5}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"shard-{i:04d}.bin").write_bytes(os.urandom(i * 37 % 4096))
    (root / "odd\tname#%").write_bytes(b"escaped")
    return root


def test_ray_manifest_equals_the_local_one_for_local_files(
    on_cluster: RayCluster,
    tmp_path: Path,
    cli: Callable[..., Result],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = tree(tmp_path / "data")
    monkeypatch.setenv("PROVENANCE_RAY_BATCH_BYTES", "65536")  # many batches, both nodes
    local = cli("dataset", "manifest", str(data), "-o", str(tmp_path / "local.mf"), "--json")
    ray = cli(
        "dataset",
        "manifest",
        str(data),
        "-o",
        str(tmp_path / "ray.mf"),
        "--engine",
        "ray",
        "--json",
    )
    assert local.code == 0 and ray.code == 0, ray.err
    doc = json.loads(ray.out)
    assert doc["engine"] == "ray" and doc["batches"] > 5 and doc["members"] == 301
    assert (tmp_path / "ray.mf").read_bytes() == (tmp_path / "local.mf").read_bytes()
    assert doc["sha256"] == json.loads(local.out)["sha256"]


def test_engine_comes_from_pyproject_and_verify_runs_on_ray(
    on_cluster: RayCluster,
    tmp_path: Path,
    cli: Callable[..., Result],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data = tree(tmp_path / "data", 40)
    (tmp_path / "pyproject.toml").write_text('[tool.provenance]\nengine = "ray"\n')
    monkeypatch.chdir(tmp_path)
    r = cli("dataset", "manifest", "data", "-o", "d.mf", "--json")
    assert r.code == 0 and json.loads(r.out)["engine"] == "ray", r.err
    (data / "part-1" / "shard-0001.bin").write_bytes(b"tampered")
    (data / "part-2" / "shard-0002.bin").unlink()
    r = cli("dataset", "verify", "d.mf", "data", "--json")
    doc = json.loads(r.out)
    assert r.code == 1 and doc["engine"] == "ray"
    assert doc["counts"] == {"missing": 1, "extra": 0, "changed": 1}
    assert doc["shown"]["missing"][0]["path"] == "part-2/shard-0002.bin"
    assert doc["shown"]["changed"][0]["path"] == "part-1/shard-0001.bin"


def test_progress_is_fed_by_completed_batches(
    on_cluster: RayCluster, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from provenance.datasets import _engines
    from provenance.datasets._sources import LocalSource

    data = tree(tmp_path / "data", 120)
    monkeypatch.setenv("PROVENANCE_RAY_BATCH_BYTES", "32768")
    advanced: list[int] = []
    totals: list[int] = []
    lines: list[bytes] = []
    stats = _engines.run(
        "ray", LocalSource(str(data)), lines.extend, advanced.append, totals.append
    )
    assert sum(advanced) == totals[0] == len(lines) == 121
    assert len(advanced) == stats.batches > 3  # one step per finished batch


def test_unreadable_member_fails_the_whole_manifest_by_name(
    on_cluster: RayCluster, tmp_path: Path, cli: Callable[..., Result]
) -> None:
    data = tree(tmp_path / "data", 50)
    victim = data / "part-3" / "shard-0003.bin"
    out = tmp_path / "d.mf"
    out.write_bytes(b"previous")
    # Unreadable once listed: a file the worker cannot open (root reads any mode, so the
    # member is replaced by a dangling symlink inside the dataset).
    victim.unlink()
    victim.symlink_to(data / "gone")
    r = cli("dataset", "manifest", str(data), "-o", str(out), "--engine", "ray")
    assert r.code == 3, r.err
    assert "part-3/shard-0003.bin" in r.err and len(r.err.strip().splitlines()) == 1
    assert out.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".tmp")] == []


def test_worker_killed_mid_batch_is_retried_by_ray(
    on_cluster: RayCluster, tmp_path: Path, cli: Callable[..., Result]
) -> None:
    data = tree(tmp_path / "data", 20)
    # Sparse files: gigabytes to hash (about a second per batch) without using the disk.
    for name in ("big-1", "big-2", "big-3"):
        with (data / name).open("wb") as f:
            f.truncate(1536 << 20)
    expected = tmp_path / "local.mf"
    assert cli("dataset", "manifest", str(data), "-o", str(expected)).code == 0
    out = tmp_path / "ray.mf"
    script = (
        "import json, sys\n"
        "from provenance.datasets import make_manifest\n"
        "info, stats = make_manifest(sys.argv[1], sys.argv[2], engine='ray', quiet=True)\n"
        "print(json.dumps({'batches': stats.batches, 'workers': sorted(stats.workers)}))\n"
    )
    env = {
        **ray_env(),
        "RAY_ADDRESS": on_cluster.address,
        "PROVENANCE_RAY_BATCH_BYTES": str(1 << 30),
    }
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(data), str(out)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    killed: list[int] = []

    def kill_first_busy_worker() -> None:
        deadline = time.monotonic() + 120
        while proc.poll() is None and time.monotonic() < deadline:
            busy = on_cluster.task_workers(TASK)
            if busy:
                os.kill(busy[0].pid, signal.SIGKILL)
                killed.append(busy[0].pid)
                return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_first_busy_worker)
    killer.start()
    stdout, stderr = proc.communicate(timeout=300)
    killer.join()
    assert proc.returncode == 0, stderr
    assert killed, "no worker was seen running a batch"
    doc = json.loads(stdout.strip().splitlines()[-1])
    # Every batch was delivered, none by the killed process: Ray ran its batch again.
    assert killed[0] not in doc["workers"]
    assert out.read_bytes() == expected.read_bytes()


def test_without_ray_the_engine_names_the_extra(tmp_path: Path) -> None:
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "f").write_text("x")
    code = (
        "import sys\n"
        "sys.modules['ray'] = None  # as if the extra were not installed\n"
        "from provenance.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    out = tmp_path / "m"
    r = subprocess.run(
        [
            sys.executable,
            "-c",
            code,
            "dataset",
            "manifest",
            str(tmp_path / "d"),
            "-o",
            str(out),
            "--engine",
            "ray",
        ],
        capture_output=True,
        text=True,
        env=ray_env(),
        check=False,
    )
    assert r.returncode == 2, r.stderr
    assert "pip install 'ml-provenance[ray]'" in r.stderr
    assert not out.exists()


# -- objects on the stack's S3 -------------------------------------------------------------------

S3_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
    "MLFLOW_S3_ENDPOINT_URL",
)


@pytest.mark.stack
def test_ray_manifest_equals_the_local_one_for_objects(
    on_cluster: RayCluster,
    stack: Stack,
    tmp_path: Path,
    cli: Callable[..., Result],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in S3_ENV:
        monkeypatch.setenv(name, stack.env[name])
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("PROVENANCE_RAY_BATCH_BYTES", "4096")
    s3 = s3_client(stack)
    prefix = f"ds/{uuid.uuid4().hex[:12]}/"
    bodies = {f"shard-{i:03d}.bin": os.urandom(i * 53 % 3000) for i in range(60)}
    bodies["odd name#%.txt"] = b"escaped"
    for rel, body in bodies.items():
        s3.put_object(Bucket="mlflow", Key=prefix + rel, Body=body)
    s3.put_object(Bucket="mlflow", Key=prefix + "dir/", Body=b"")  # a directory marker
    uri = f"s3://mlflow/{prefix.rstrip('/')}"
    local = cli("dataset", "manifest", uri, "-o", str(tmp_path / "local.mf"), "--json")
    ray = cli(
        "dataset", "manifest", uri, "-o", str(tmp_path / "ray.mf"), "--json", "--engine", "ray"
    )
    assert local.code == 0 and ray.code == 0, (local.err, ray.err)
    text = (tmp_path / "ray.mf").read_bytes()
    assert text == (tmp_path / "local.mf").read_bytes()
    assert json.loads(ray.out)["members"] == 61 and json.loads(ray.out)["batches"] > 3
    assert text.startswith(b"#ml-provenance-dataset/1\tsha256\ts3\n")
    line = next(x for x in text.splitlines() if x.startswith(b"odd name%23%25.txt\t"))
    assert line.split(b"\t")[2] == hashlib.sha256(b"escaped").hexdigest().encode()
    assert line.split(b"\t")[3].startswith(b'"')  # the ETag, as the store sent it

    s3.put_object(Bucket="mlflow", Key=prefix + "shard-007.bin", Body=b"tampered")
    s3.delete_object(Bucket="mlflow", Key=prefix + "shard-008.bin")
    s3.put_object(Bucket="mlflow", Key=prefix + "planted.bin", Body=b"p")
    for engine in ("local", "ray"):
        r = cli("dataset", "verify", str(tmp_path / "ray.mf"), uri, "--engine", engine, "--json")
        doc = json.loads(r.out)
        assert r.code == 1 and doc["counts"] == {"missing": 1, "extra": 1, "changed": 1}, r.out
        assert [c["path"] for k in ("missing", "extra", "changed") for c in doc["shown"][k]] == [
            "shard-008.bin",
            "planted.bin",
            "shard-007.bin",
        ]

    # Credentials the store refuses: the task's refusal comes back named, exit 4, no manifest.
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    bad = tmp_path / "bad.mf"
    r = cli("dataset", "manifest", uri, "-o", str(bad), "--engine", "ray")
    assert (
        r.code == 4 and r.err.startswith("error: S3:") and len(r.err.strip().splitlines()) == 1
    ), r.err
    assert not bad.exists()


# -- plain -m/-p patterns on Ray -----------------------------------------------------------------


def run_step(cli: Callable[..., Result], name: str, *engine: str) -> Result:
    return cli(
        "run", name, "-m", "data/**", "-m", "train.py", "-p", "data/part-1/**",
        "--key", "keys/k", *engine, "--", sys.executable, "-c", "pass",
    )  # fmt: skip


def link_doc(root: Path, step: str) -> dict[str, object]:
    import base64

    (path,) = (root / ".provenance" / "links").glob(f"{step}.*.link")
    return dict(json.loads(base64.b64decode(json.loads(path.read_text())["payload"])))


def test_ray_hashes_plain_patterns_exactly_like_the_local_engine(
    on_cluster: RayCluster,
    tmp_path: Path,
    cli: Callable[..., Result],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = tmp_path / "proj"
    data = tree(root / "data", 200)
    (data / "part-0" / "é ü.bin").write_bytes(b"utf-8 name")
    (data / "part-1" / "link.bin").symlink_to(data / "part-1" / "shard-0001.bin")
    (root / "train.py").write_text("print('train')\n")
    # The engine can come from [tool.provenance] ("configured" below); a flag wins over it.
    (root / "pyproject.toml").write_text('[tool.provenance]\nengine = "ray"\n')
    monkeypatch.chdir(root)
    assert cli("keygen", "k", "--dir", "keys").code == 0
    monkeypatch.setenv("PROVENANCE_RAY_BATCH_BYTES", "65536")  # many batches, both nodes
    assert run_step(cli, "local", "--engine", "local").code == 0
    r = run_step(cli, "ray", "--engine", "ray")
    assert r.code == 0, r.err
    r = run_step(cli, "configured")
    assert r.code == 0, r.err
    local, ray, configured = (link_doc(root, s) for s in ("local", "ray", "configured"))
    assert len(local["materials"]) == 204 and len(local["products"]) == 41  # type: ignore[arg-type]
    for other in (ray, configured):
        assert other["materials"] == local["materials"]
        assert other["products"] == local["products"]
        assert other["environment"]["engine"] == "ray"  # type: ignore[index]
    assert "engine" not in local["environment"]  # type: ignore[operator]


def test_a_pattern_file_that_cannot_be_read_on_ray_refuses_the_step_by_name(
    on_cluster: RayCluster,
    tmp_path: Path,
    cli: Callable[..., Result],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    root = tmp_path / "proj"
    data = tree(root / "data", 30)
    (root / "train.py").write_text("print('train')\n")
    monkeypatch.chdir(root)
    assert cli("keygen", "k", "--dir", "keys").code == 0
    victim = data / "part-2" / "shard-0002.bin"
    victim.unlink()
    victim.symlink_to(data / "gone")
    r = cli(
        "run", "s", "-m", "data/**", "--key", "keys/k", "--engine", "ray",
        "--", sys.executable, "-c", "open('ran', 'w')",
    )  # fmt: skip
    assert r.code == 3, r.err
    assert "part-2/shard-0002.bin" in r.err and len(r.err.strip().splitlines()) == 1
    assert not (root / "ran").exists()
    assert not list(root.rglob("*.link"))
