"""`provenance verify` re-hashes an `s3://` dataset product against its manifest (stack's S3).

A step records a dataset of objects as one manifest product. After the step, an object is
changed, added or removed under the prefix: the manifest file is untouched (the files phase
passes), and the datasets phase re-hashes the objects and fails naming the step, the manifest
and the member, with counts (exit 1). Verification writes nothing and changes no object. An
unreachable store is exit 4, never a pass.
"""

from __future__ import annotations

import json
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from provenance.datasets import Dataset
from tests.conftest import Result, snapshot
from tests.integration.test_objects import (
    BUCKET,
    S3_ENV,
    assert_one_line_exit_4,
    closed_port,
    s3_client,
)
from tests.stack_fixture import Stack

pytestmark = pytest.mark.stack

LAYOUT = """\
expires: 30d
functionaries:
  data-eng: keys/data-eng.pub
steps:
  - name: ingest
    functionaries: [data-eng]
    materials:
      - disallow: "*"
    products:
      - create: "{manifest}"
"""


class Project:
    def __init__(self, root: Path, stack: Stack, cli: Callable[..., Result]) -> None:
        self.root, self.cli = root, cli
        self.s3 = s3_client(stack)
        self.prefix = f"ds/{uuid.uuid4().hex[:12]}/"
        self.uri = f"s3://{BUCKET}/{self.prefix.rstrip('/')}"
        self.manifest = Dataset(self.uri).manifest_path

    def put(self, rel: str, body: bytes) -> None:
        self.s3.put_object(Bucket=BUCKET, Key=self.prefix + rel, Body=body)

    def objects(self) -> dict[str, str]:
        """Key -> ETag of every object under the prefix (what verification must not change)."""
        pages = self.s3.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=self.prefix)
        return {o["Key"]: o["ETag"] for page in pages for o in page.get("Contents", [])}

    def verify(self, *extra: str) -> Result:
        return self.cli(
            "verify", "--layout", "root.layout", "--layout-key", "keys/owner.pub", *extra
        )


@pytest.fixture
def proj(
    stack: Stack, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., Result]
) -> Iterator[Project]:
    for name in S3_ENV:
        monkeypatch.setenv(name, stack.env[name])
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)
    monkeypatch.delenv("PROVENANCE_ENGINE", raising=False)
    root = tmp_path / "project"
    root.mkdir()
    monkeypatch.chdir(root)
    for name in ("data-eng", "owner"):
        assert cli("keygen", name, "--dir", "keys").code == 0
    p = Project(root, stack, cli)
    for i in range(12):
        p.put(f"part-{i % 3}/shard-{i:03d}.bin", bytes([i]) * (100 + i))
    r = cli(
        "run", "ingest", "--dataset-product", p.uri, "--key", "keys/data-eng",
        "--", sys.executable, "-c", "pass",
    )  # fmt: skip
    assert r.code == 0, r.err
    (root / "layout.yaml").write_text(LAYOUT.format(manifest=p.manifest))
    r = cli("layout", "sign", "layout.yaml", "--key", "keys/owner", "-o", "root.layout")
    assert r.code == 0, r.err
    yield p
    for key in p.objects():
        p.s3.delete_object(Bucket=BUCKET, Key=key)


def failed(r: Result) -> dict[str, Any]:
    doc = json.loads(r.out)
    assert r.code == 1 and doc["verified"] is False, r.out
    (failure,) = [f for f in doc["failures"] if f["phase"] == "datasets"]
    return dict(failure)


def test_honest_s3_dataset_product_verifies(proj: Project) -> None:
    r = proj.verify("--json")
    assert r.code == 0, r.out + r.err
    assert "datasets" in json.loads(r.out)["phases"]


@pytest.mark.parametrize(
    ("attack", "count", "shown"),
    [
        ("changed", "1 changed", "hash mismatch for 'part-1/shard-004.bin'"),
        ("added", "1 extra", "extra file: 'part-0/planted.bin'"),
        ("removed", "1 missing", "missing: 'part-2/shard-005.bin'"),
    ],
)
def test_object_changed_added_or_removed_after_the_step_fails_verify(
    proj: Project, attack: str, count: str, shown: str
) -> None:
    if attack == "changed":
        proj.put("part-1/shard-004.bin", b"tampered")
    elif attack == "added":
        proj.put("part-0/planted.bin", b"p")
    else:
        proj.s3.delete_object(Bucket=BUCKET, Key=proj.prefix + "part-2/shard-005.bin")
    files, stored = snapshot(proj.root), proj.objects()
    r = proj.verify("--json")
    failure = failed(r)
    assert failure["step"] == "ingest" and failure["artifact"] == proj.manifest
    assert failure["message"] == (
        f"dataset {proj.uri} of step 'ingest' does not match its manifest {proj.manifest}: {count}"
    )
    assert any(shown in d for d in failure["details"]), failure
    text = proj.verify()
    assert text.code == 1 and count in text.out + text.err and shown in text.out + text.err
    # Verification changed nothing: no file written, no object touched.
    assert snapshot(proj.root) == files and proj.objects() == stored


def test_many_differences_are_counted_and_the_first_names_shown(proj: Project) -> None:
    for i in range(12):
        proj.put(f"part-{i % 3}/shard-{i:03d}.bin", b"all changed")
    for i in range(25):
        proj.put(f"planted/{i:03d}.bin", b"p")
    failure = failed(proj.verify("--json"))
    assert failure["message"].endswith(": 25 extra, 12 changed")
    assert "... and 5 more (the first 20 of each kind are shown)" in failure["details"]


def test_unreachable_store_is_exit_4_not_a_pass(
    proj: Project, monkeypatch: pytest.MonkeyPatch
) -> None:
    files = snapshot(proj.root)
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", f"http://127.0.0.1:{closed_port()}")
    assert_one_line_exit_4(proj.verify(), "unreachable")
    assert snapshot(proj.root) == files
