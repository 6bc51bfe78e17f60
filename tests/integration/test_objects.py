"""Object-store materials and products (`s3://bucket/prefix/**`) against the stack's real S3.

Two steps share nothing but the bucket: `ingest` reads raw objects and writes clean ones, `train`
reads the clean objects and writes a local model. Every test works under its own key prefix of
the stack's bucket, with the gate's credentials from the stack's `env`.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from provenance.hashing import objects
from tests.conftest import FUNCTIONARIES, Result, in_toto_verify, snapshot
from tests.stack_fixture import Stack

BUCKET = "mlflow"
S3_ENV = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_DEFAULT_REGION",
    "MLFLOW_S3_ENDPOINT_URL",
)

COPY = (
    "import os, boto3; from botocore.config import Config\n"
    "s3 = boto3.client('s3', endpoint_url=os.environ['MLFLOW_S3_ENDPOINT_URL'],"
    " config=Config(s3={'addressing_style': 'path'}))\n"
    "src, dst = os.environ['SRC'], os.environ['DST']\n"
    "for item in s3.list_objects_v2(Bucket='mlflow', Prefix=src)['Contents']:\n"
    "    body = s3.get_object(Bucket='mlflow', Key=item['Key'])['Body'].read()\n"
    "    name = item['Key'][len(src):]\n"
    "    s3.put_object(Bucket='mlflow', Key=dst + name, Body=body.upper())\n"
)
TRAIN = (
    "import os, boto3; from botocore.config import Config\n"
    "s3 = boto3.client('s3', endpoint_url=os.environ['MLFLOW_S3_ENDPOINT_URL'],"
    " config=Config(s3={'addressing_style': 'path'}))\n"
    "body = s3.get_object(Bucket='mlflow', Key=os.environ['DST'] + 'a.csv')['Body'].read()\n"
    "os.makedirs('models', exist_ok=True)\n"
    "open('models/model.bin', 'wb').write(body[::-1])\n"
)


# -- URIs: refused before any request -----------------------------------------------------------


@pytest.mark.parametrize(
    ("uri", "why"),
    [
        ("s3://", "no bucket"),
        ("s3:///x", "no bucket"),
        ("s3://b/../x", "'b' is not a valid bucket name"),
        ("s3://bucket/../x", "'.' or '..' segment"),
        ("s3://bucket/a//b", "empty"),
        ("s3://bucket/./a", "'.' or '..' segment"),
        ("s3://Bad_Bucket/x", "not a valid bucket name"),
        ("s3://bu*/x", "not a valid bucket name"),
    ],
)
def test_malformed_uri_is_refused_with_one_line_exit_3(
    tmp_path: Path, cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch, uri: str, why: str
) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli("keygen", "k", "--dir", "keys").code == 0
    before = snapshot(tmp_path)
    r = cli("run", "s", "-m", uri, "--key", "keys/k", "--", sys.executable, "-c", "pass")
    assert r.code == 3, r.err
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and uri in lines[0] and why in lines[0], r.err
    assert "Traceback" not in r.err
    assert snapshot(tmp_path) == before  # no link, no run id


def test_object_patterns_use_the_glob_semantics_of_local_patterns() -> None:
    p = objects.ObjectPattern.compile("s3://data/raw/**")
    assert (p.bucket, p.prefix) == ("data", "raw/")
    assert p.matches("s3://data/raw/a/b.csv") and not p.matches("s3://data/rawx/a")
    one = objects.ObjectPattern.compile("s3://data/raw/*.csv")
    assert one.matches("s3://data/raw/a.csv") and not one.matches("s3://data/raw/x/a.csv")
    assert one.claims("s3://data/raw/x/a.csv")  # extra objects under the claimed prefix
    whole = objects.ObjectPattern.compile("s3://data/raw")
    assert whole.prefix == "raw" and whole.matches("s3://data/raw/deep/x")
    assert objects.unsafe_artifacts(["s3://data/a", "s3://data/../a", "s3://data/a/", "x/y"]) == [
        "s3://data/../a",
        "s3://data/a/",
    ]


# -- against the stack's S3 ---------------------------------------------------------------------


def s3_client(stack: Stack) -> Any:
    import boto3
    from botocore.config import Config

    env = stack.env
    return boto3.client(
        "s3",
        endpoint_url=env["MLFLOW_S3_ENDPOINT_URL"],
        aws_access_key_id=env["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=env["AWS_SECRET_ACCESS_KEY"],
        region_name=env["AWS_DEFAULT_REGION"],
        config=Config(s3={"addressing_style": "path"}),
    )


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


LAYOUT = """\
expires: 30d
functionaries:
  data-eng: keys/data-eng.pub
  trainer: keys/trainer.pub
steps:
  - name: ingest
    functionaries: [data-eng]
    materials:
      - allow: "s3://mlflow/{p}raw/*"
    products:
      - create: "s3://mlflow/{p}clean/*"
{require}  - name: train
    functionaries: [trainer]
    materials:
      - match: "s3://mlflow/{p}clean/*"
        from: ingest
    products:
      - create: "models/*"
"""


class S3Project:
    """A project whose data lives under one fresh prefix of the stack's bucket."""

    def __init__(self, root: Path, stack: Stack, cli: Callable[..., Result]) -> None:
        self.root, self.stack, self.cli = root, stack, cli
        self.prefix = f"t/{uuid.uuid4().hex[:12]}/"
        self.s3 = s3_client(stack)

    def uri(self, rel: str) -> str:
        return f"s3://{BUCKET}/{self.prefix}{rel}"

    def put(self, rel: str, body: bytes) -> None:
        self.s3.put_object(Bucket=BUCKET, Key=self.prefix + rel, Body=body)

    def get(self, rel: str) -> bytes:
        return bytes(self.s3.get_object(Bucket=BUCKET, Key=self.prefix + rel)["Body"].read())

    def step(self, name: str, key: str, script: str, *patterns: str) -> Result:
        os.environ["SRC"], os.environ["DST"] = self.prefix + "raw/", self.prefix + "clean/"
        return self.cli(
            "run", name, *patterns, "--key", f"keys/{key}", "--", sys.executable, "-c", script
        )

    def record(self) -> None:
        r = self.step(
            "ingest", "data-eng", COPY, "-m", self.uri("raw/**"), "-p", self.uri("clean/**")
        )
        assert r.code == 0, r.err
        r = self.step("train", "trainer", TRAIN, "-m", self.uri("clean/**"), "-p", "models/**")
        assert r.code == 0, r.err

    def sign(self, require: str = "") -> None:
        text = LAYOUT.format(p=self.prefix, require=require)
        (self.root / "layout.yaml").write_text(text)
        r = self.cli("layout", "sign", "layout.yaml", "--key", "keys/owner", "-o", "root.layout")
        assert r.code == 0, r.err

    def verify(self, *extra: str) -> Result:
        return self.cli(
            "verify", "--layout", "root.layout", "--layout-key", "keys/owner.pub", *extra
        )

    def link(self, step: str) -> dict[str, Any]:
        import base64

        (path,) = (self.root / ".provenance/links").glob(f"{step}.*.link")
        envelope = json.loads(path.read_text())
        return dict(json.loads(base64.b64decode(envelope["payload"])))


@pytest.fixture
def s3project(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., Result]
) -> S3Project:
    for name in S3_ENV:
        monkeypatch.setenv(name, stack.env[name])
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("SRC", "")
    monkeypatch.setenv("DST", "")
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.chdir(root)
    for name in (*FUNCTIONARIES, "owner"):
        assert cli("keygen", name, "--dir", "keys").code == 0
    proj = S3Project(root, stack, cli)
    proj.put("raw/a.csv", b"x,y\n1,2\n")
    proj.put("raw/b.csv", b"x,y\n3,4\n")
    return proj


@pytest.mark.stack
def test_s3_materials_and_products_are_recorded_under_their_uri_and_verify(
    s3project: S3Project,
) -> None:
    p = s3project
    p.record()
    ingest = p.link("ingest")
    clean_a = p.uri("clean/a.csv")
    assert set(ingest["materials"]) == {p.uri("raw/a.csv"), p.uri("raw/b.csv")}
    assert ingest["products"][clean_a] == {"sha256": hashlib.sha256(b"X,Y\n1,2\n").hexdigest()}
    recorded = ingest["environment"]["objects"]["products"][clean_a]
    assert recorded["size"] == 8 and recorded["etag"].strip('"')
    assert p.link("train")["materials"][clean_a] == ingest["products"][clean_a]
    p.sign()
    r = p.verify("--json")
    assert r.code == 0, r.out + r.err
    doc = json.loads(r.out)
    assert doc["verified"] is True and "files" in doc["phases"]
    # model.bin + 2 clean products + 2 raw source materials, all re-hashed
    assert doc["artifacts_checked"] == 5


@pytest.mark.stack
def test_upstream_in_toto_verify_accepts_links_with_s3_artifacts(s3project: S3Project) -> None:
    from tests.integration.test_interop_in_toto import in_toto_layout

    p = s3project
    p.record()
    in_toto_layout(
        p.root,
        [
            (
                "ingest",
                "data-eng",
                [["ALLOW", p.uri("raw/*")], ["DISALLOW", "*"]],
                [["CREATE", p.uri("clean/*")], ["DISALLOW", "*"]],
            ),
            (
                "train",
                "trainer",
                [
                    ["MATCH", p.uri("clean/*"), "WITH", "PRODUCTS", "FROM", "ingest"],
                    ["DISALLOW", "*"],
                ],
                [["CREATE", "models/*"], ["DISALLOW", "*"]],
            ),
        ],
    )
    proc = in_toto_verify(p.root)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def assert_refused(p: S3Project, r: Result, *needles: str) -> None:
    assert r.code == 1, r.out + r.err
    text = r.out + r.err
    for needle in needles:
        assert needle in text, text


@pytest.mark.stack
def test_tampered_object_same_key_fails_naming_uri_expected_actual(s3project: S3Project) -> None:
    p = s3project
    p.record()
    p.sign()
    good = hashlib.sha256(b"X,Y\n1,2\n").hexdigest()
    p.put("clean/a.csv", b"X,Y\n1,9999\n")
    links = snapshot(p.root)
    r = p.verify()
    bad = hashlib.sha256(b"X,Y\n1,9999\n").hexdigest()
    assert_refused(
        p, r, f"hash mismatch for '{p.uri('clean/a.csv')}'", good, bad, "size 8 -> 11", "ETag"
    )
    assert snapshot(p.root) == links and p.get("clean/a.csv") == b"X,Y\n1,9999\n"


@pytest.mark.stack
def test_tampered_source_material_object_fails(s3project: S3Project) -> None:
    p = s3project
    p.record()
    p.sign()
    p.put("raw/b.csv", b"poisoned")
    assert_refused(p, p.verify(), f"hash mismatch for '{p.uri('raw/b.csv')}'")


@pytest.mark.stack
def test_deleted_object_fails_as_missing(s3project: S3Project) -> None:
    p = s3project
    p.record()
    p.sign()
    p.s3.delete_object(Bucket=BUCKET, Key=p.prefix + "clean/b.csv")
    assert_refused(p, p.verify(), f"missing: '{p.uri('clean/b.csv')}'")


@pytest.mark.stack
def test_extra_object_under_a_product_prefix_is_refused(s3project: S3Project) -> None:
    p = s3project
    p.record()
    p.sign()
    p.put("clean/evil.csv", b"planted")
    assert_refused(
        p, p.verify(), f"extra file: '{p.uri('clean/evil.csv')}'", "products of step 'ingest'"
    )


def assert_one_line_exit_4(r: Result, *needles: str) -> None:
    assert r.code == 4, r.out + r.err
    lines = [line for line in r.err.strip().splitlines() if line.strip()]
    assert len(lines) == 1, r.err
    for needle in ("S3", *needles):
        assert needle in lines[0], lines[0]


@pytest.mark.stack
def test_wrong_credentials_exit_4_in_one_line_at_record_and_verify(
    s3project: S3Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = s3project
    p.record()
    p.sign()
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
    assert_one_line_exit_4(p.verify(), "refused the credentials")
    links = snapshot(p.root)
    r = p.step("again", "data-eng", "pass", "-m", p.uri("raw/**"))
    assert_one_line_exit_4(r, "refused the credentials")
    assert snapshot(p.root) == links  # no link written


@pytest.mark.stack
def test_s3_unreachable_exits_4_in_one_line(
    s3project: S3Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    p = s3project
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", f"http://127.0.0.1:{closed_port()}")
    r = p.step("ingest", "data-eng", "pass", "-m", p.uri("raw/**"))
    assert_one_line_exit_4(r, "unreachable")


@pytest.mark.stack
def test_missing_bucket_exits_4_naming_the_bucket(s3project: S3Project) -> None:
    r = s3project.step("ingest", "data-eng", "pass", "-m", "s3://no-such-bucket/raw/**")
    assert_one_line_exit_4(r, "'no-such-bucket'")


@pytest.mark.stack
def test_pattern_matching_nothing_warns_then_fails_where_the_layout_requires_it(
    s3project: S3Project, caplog: pytest.LogCaptureFixture
) -> None:
    p = s3project
    r = p.step(
        "ingest", "data-eng", "pass", "-m", p.uri("raw/**"), "-p", p.uri("clean/**")
    )  # writes nothing
    assert r.code == 0, r.err
    assert f"products pattern '{p.uri('clean/**')}' matched no object" in caplog.text
    assert p.link("ingest")["products"] == {}
    r = p.step("train", "trainer", "pass", "-m", p.uri("clean/**"), "-p", "models/**")
    assert r.code == 0, r.err
    p.sign(require=f'      - require: "{p.uri("clean/a.csv")}"\n')
    r = p.verify()
    assert_refused(p, r, p.uri("clean/a.csv"))


MEASURE = """
import json, resource, sys
from provenance.hashing import objects
s3 = objects.client()
s3.list_objects_v2(Bucket="mlflow", MaxKeys=1)  # warmed up: what follows is hashing alone
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
digest, info = objects.hash_object(s3, sys.argv[1])
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"sha256": digest, "size": info.size, "before_kib": before, "after_kib": after}))
"""


@pytest.mark.stack
def test_hashing_streams_a_256_mib_object_in_bounded_memory(
    s3project: S3Project, tmp_path: Path
) -> None:
    p = s3project
    size = 256 << 20
    block = hashlib.sha256(b"seed").digest() * (1 << 15)  # 1 MiB, not all zeros
    big = tmp_path / "big.bin"
    expected = hashlib.sha256()
    with big.open("wb") as f:
        for _ in range(size // len(block)):
            f.write(block)
            expected.update(block)
    p.s3.upload_file(str(big), BUCKET, p.prefix + "big/model.bin")
    big.unlink()
    env = {**os.environ}
    proc = subprocess.run(
        [sys.executable, "-c", MEASURE, p.uri("big/model.bin")],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    got = json.loads(proc.stdout)
    assert got["sha256"] == expected.hexdigest() and got["size"] == size
    # Peak RSS grew by far less than the object: its bytes were streamed, not held.
    assert got["after_kib"] - got["before_kib"] < 48 * 1024, got
