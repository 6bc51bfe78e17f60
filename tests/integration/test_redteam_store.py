"""Red-team attacks on links kept in an object store and on re-hashing `s3://` dataset products.

Against the stack's real S3 (SeaweedFS): prefix confusion between runs, links planted under a
valid name of another step or key, the store's conditional writes, a layout that does not
verify while the store is down, a download cap that holds while reading, a run's description
of its dataset rewritten (kind, source) and re-signed, hostile dataset sources in the displays.
Each asserts the refusal, its exit code and that nothing was verified, changed or promoted.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest

import tests.integration.test_datasets_verify_s3 as _datasets_s3
import tests.integration.test_links_object_store as _links_s3
from provenance.links import write_link
from provenance.signing import load_signer
from tests.conftest import snapshot
from tests.integration.test_datasets_verify_s3 import Project, failed
from tests.integration.test_links_object_store import BUCKET, Store, assert_refused

pytestmark = pytest.mark.stack
store = _links_s3.store  # the fixtures of the two files attacked here
proj = _datasets_s3.proj


def _resign(links_dir: Path, step: str, key: str, change: Any) -> Path:
    """Rewrite `step`'s link payload with `change(doc)` and sign it again with `key`."""
    (path,) = links_dir.glob(f"{step}.*.link")
    env = json.loads(path.read_bytes())
    doc = json.loads(base64.b64decode(env["payload"]))
    change(doc)
    path.unlink()
    payload = json.dumps(doc, sort_keys=True, separators=(",", ":")).encode()
    return Path(write_link(payload, load_signer(key), step, str(links_dir)))


# --- A. links in an object store ------------------------------------------------------------


def test_a_run_whose_name_prefixes_another_sees_none_of_its_links(store: Store) -> None:
    """`RUN` lists `PREFIX/RUN/` only: a complete `RUN2` beside it lends it no link."""
    assert store.record("kfp:abc2").code == 0
    assert store.record("kfp:abc", ("prepare",)).code == 0
    shutil.rmtree(store.root / ".provenance/links")
    r = store.verify(store.location("kfp:abc"))
    assert r.code == 1 and "PASS" not in r.out, r.out + r.err
    assert "train" in r.out, r.out  # the missing step is named


def test_a_second_link_of_a_step_by_an_unauthorised_key_is_ignored_as_in_a_directory(
    store: Store,
) -> None:
    """`train.<data-eng keyid>.link` (a valid name, a real signature of another functionary)
    beside the real train link: verified exactly as the same two files in a directory."""
    run = "kfp:run-twolinks"
    assert store.record(run).code == 0
    links = store.root / ".provenance/links"
    prepare = store.link_name("prepare")
    dataeng_keyid = prepare.split(".")[1]
    forged = json.loads((links / prepare).read_bytes())
    store.put(run, f"train.{dataeng_keyid}.link", json.dumps(forged).encode())
    local = store.root / "local-copy"
    local.mkdir()
    for name, body in store.keys(run).items():
        (local / name).write_bytes(body)
    shutil.rmtree(links)
    from_store = store.verify(store.location(run))
    from_dir = store.verify(str(local))
    # in-toto ignores a link signed by a key the step does not authorise: both verify the
    # real train link and nothing else, with the same verdict.
    assert from_store.code == from_dir.code == 0, from_store.out + from_store.err
    assert from_store.out == from_dir.out, (from_store.out, from_dir.out)


def test_a_link_of_one_step_under_another_steps_name_fails(store: Store) -> None:
    """prepare's signed link stored as `train.<its keyid>.link` in a run without train."""
    run = "kfp:run-renamed"
    assert store.record(run, ("prepare",)).code == 0
    prepare = store.link_name("prepare")
    body = store.keys(run)[prepare]
    store.put(run, "train." + prepare.split(".", 1)[1], body)
    shutil.rmtree(store.root / ".provenance/links")
    r = store.verify(store.location(run))
    assert r.code == 1 and "PASS" not in r.out, r.out + r.err


def test_a_whole_earlier_run_copied_under_this_run_fails_naming_it(store: Store) -> None:
    """Replay: every link of run `old` put under `new`'s prefix (the files on disk match
    them). Not one stray link but a complete, consistent run of the wrong id: refused."""
    old, new = "kfp:run-replayed-old", "kfp:run-replayed-new"
    assert store.record(old).code == 0
    earlier = store.keys(old)
    assert store.record(new).code == 0
    for name in store.keys(new):
        store.s3.delete_object(Bucket=BUCKET, Key=store.key(new, name))
    for name, body in earlier.items():
        store.put(new, name, body)
    shutil.rmtree(store.root / ".provenance/links")
    r = store.verify(store.location(new))
    assert r.code == 1 and "PASS" not in r.out, r.out + r.err
    assert f"pipeline run {old}" in r.out and "kfp_run-replayed-new" in r.out, r.out
    assert store.verify(store.location(old)).code == 0  # where they belong, they verify


def test_store_refuses_a_second_write_and_a_stale_etag(store: Store) -> None:
    """What `put_object_link` relies on: SeaweedFS honours If-None-Match and If-Match."""
    from botocore.exceptions import ClientError

    run = "kfp:run-conditional"
    assert store.record(run, ("prepare",)).code == 0
    name = store.link_name("prepare")
    key, before = store.key(run, name), store.keys(run)
    with pytest.raises(ClientError) as first:
        store.s3.put_object(Bucket=BUCKET, Key=key, Body=b"over", IfNoneMatch="*")
    assert first.value.response["Error"]["Code"] in ("PreconditionFailed", "412")
    with pytest.raises(ClientError) as second:
        store.s3.put_object(Bucket=BUCKET, Key=key, Body=b"over", IfMatch='"0123456789abcdef"')
    assert second.value.response["Error"]["Code"] in ("PreconditionFailed", "412")
    assert store.keys(run) == before


def test_a_bad_layout_is_refused_before_the_store_is_touched(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    run = "kfp:run-badlayout"
    assert store.record(run).code == 0
    doc = json.loads((store.root / "root.layout").read_bytes())
    doc["signatures"][0]["sig"] = "00" * 64
    (store.root / "bad.layout").write_text(json.dumps(doc))
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", "http://127.0.0.1:9")  # a store that is down
    r = store.cli(
        "verify", "--layout", "bad.layout", "--layout-key", "keys/owner.pub",
        "--links", store.location(run),
    )  # fmt: skip
    assert r.code == 1 and "PASS" not in r.out, r.out + r.err  # the signature, not exit 4
    assert "unreachable" not in r.out + r.err


def test_the_verify_task_checks_the_layout_before_the_store(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The orchestrators' verify task: a bad layout is a VerificationError, the store (down)
    is never reached, nothing is promoted."""
    from provenance.errors import VerificationError
    from provenance.integrations._core import verify_run

    run = "kfp:run-task-badlayout"
    assert store.record(run).code == 0
    doc = json.loads((store.root / "root.layout").read_bytes())
    doc["signatures"][0]["sig"] = "00" * 64
    (store.root / "bad.layout").write_text(json.dumps(doc))
    monkeypatch.setenv("MLFLOW_S3_ENDPOINT_URL", "http://127.0.0.1:9")
    with pytest.raises(VerificationError, match=r"bad\.layout"):
        verify_run(
            layout="bad.layout",
            layout_key="keys/owner.pub",
            links=store.links_root,
            run_id=run,
            artifacts={"data": str(store.root / "data")},
        )


def test_the_download_is_capped_while_reading(store: Store, tmp_path: Path) -> None:
    """An object replaced by a larger one after the listing: the read stops at the cap."""
    from provenance.errors import InputError
    from provenance.hashing import objects
    from provenance.links import _store

    run = "kfp:run-toctou"
    assert store.record(run, ("prepare",)).code == 0
    name = store.link_name("prepare")
    store.put(run, name, b"x" * 5000)
    out = tmp_path / "out"
    with out.open("wb") as f, pytest.raises(InputError, match="larger than the 4096 bytes"):
        _store._read(objects.client(), BUCKET, store.key(run, name), 4096, f)
    assert out.stat().st_size <= 4096  # nothing past the cap was written


def test_the_gathered_links_dir_is_private_and_removed(
    store: Store, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import tempfile

    run = "kfp:run-private"
    assert store.record(run).code == 0
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    store.put(run, "notes.txt", b"x")
    assert_refused(store.verify(store.location(run)), 3, "notes.txt")
    store.s3.delete_object(Bucket=BUCKET, Key=store.key(run, "notes.txt"))
    assert store.verify(store.location(run)).code == 0
    assert not list(tmp_path.glob("provenance-links-*"))  # cleaned after a refusal and a pass


def test_a_directory_marker_holding_data_is_not_a_link_and_nothing_is_listed(
    store: Store,
) -> None:
    """`PREFIX/RUN/` itself holding bytes, and nothing else: no links, exit 3 (fail closed)."""
    run = "kfp:run-marker"
    store.s3.put_object(Bucket=BUCKET, Key=store.key(run, ""), Body=b"{}")
    assert_refused(store.verify(store.location(run)), 3, "no links under this location")


@pytest.mark.parametrize(
    "name",
    [
        "train.0123abcd.link\n",  # a trailing newline ('$' would match before it)
        "tr\u0430in.0123abcd.link",  # Cyrillic 'a': a look-alike of a layout step
        "train%2E0123abcd.link",  # URL-encoded '.'
        "train.0123abcd.link%2F",
        "train.0123abcd.link/",  # a "directory" key holding data
        "train.0123abcd.link/x",
        " train.0123abcd.link",
    ],
)
def test_a_look_alike_or_encoded_name_refuses_the_run(store: Store, name: str) -> None:
    run = "kfp:run-lookalike"
    assert store.record(run).code == 0
    store.put(run, name, b"{}")
    before = store.keys(run)
    assert name in before
    r = store.verify(store.location(run))
    assert_refused(r, 3, store.location(run), "refused")
    assert store.keys(run) == before


def test_more_objects_than_a_run_may_hold_refuses_it(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    import provenance.links._store as link_store

    run = "kfp:run-many"
    assert store.record(run).code == 0
    monkeypatch.setattr(link_store, "MAX_LINKS", 3)
    store.put(run, "train.0000aaaa.link", b"{}")
    assert_refused(store.verify(store.location(run)), 3, "more than 3 objects")


# --- B. s3 dataset products -----------------------------------------------------------------


def _verify_after(proj: Project, change: Any) -> dict[str, Any]:
    links = proj.root / ".provenance/links"
    _resign(links, "ingest", "keys/data-eng", change)
    proj.put("part-1/shard-004.bin", b"tampered")
    files, stored = snapshot(proj.root), proj.objects()
    r = proj.verify("--json")
    assert r.code == 1, r.out + r.err
    assert snapshot(proj.root) == files and proj.objects() == stored
    return failed(r)


@pytest.mark.parametrize("kind", ["local", None, "S3"])
def test_an_s3_dataset_described_as_another_kind_is_still_checked(
    proj: Project,
    kind: str | None,
) -> None:
    def change(doc: dict[str, Any]) -> None:
        about = doc["environment"]["datasets"]["products"][proj.manifest]
        if kind is None:
            del about["kind"]
        else:
            about["kind"] = kind

    failure = _verify_after(proj, change)
    assert failure["artifact"] == proj.manifest and "cannot be checked" in failure["message"]


@pytest.mark.parametrize("suffix", ["-empty", "2", "/part-0"])
def test_an_s3_dataset_whose_source_names_another_prefix_fails_closed(
    proj: Project,
    suffix: str,
) -> None:
    """The link's source rewritten to a prefix that lists nothing or a part: never a pass."""

    def change(doc: dict[str, Any]) -> None:
        about = doc["environment"]["datasets"]["products"][proj.manifest]
        about["source"] = proj.uri + suffix

    failure = _verify_after(proj, change)
    assert failure["step"] == "ingest" and failure["artifact"] == proj.manifest


@pytest.mark.parametrize("source", ["s3://mlflow/ds/a/../b", "s3://mlflow/ds/%2E%2E/b"])
def test_an_s3_dataset_source_that_is_not_a_safe_prefix_is_a_finding(
    proj: Project,
    source: str,
) -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["environment"]["datasets"]["products"][proj.manifest]["source"] = source

    failure = _verify_after(proj, change)
    assert failure["artifact"] == proj.manifest


def test_a_dataset_description_on_another_artifact_is_a_finding(proj: Project) -> None:
    """The link describes a plain file it also produced as the s3 dataset: never a pass."""
    import hashlib

    (proj.root / "other.bin").write_bytes(b"not a manifest")
    digest = hashlib.sha256(b"not a manifest").hexdigest()

    def change(doc: dict[str, Any]) -> None:
        doc["products"]["other.bin"] = {"sha256": digest}
        about = doc["environment"]["datasets"]["products"]
        about["other.bin"] = dict(about[proj.manifest])

    _resign(proj.root / ".provenance/links", "ingest", "keys/data-eng", change)
    files, stored = snapshot(proj.root), proj.objects()
    r = proj.verify("--json")
    assert r.code == 1, r.out + r.err
    doc = json.loads(r.out)
    # Refused by the layout's rules before the datasets phase (which refuses a description
    # whose artifact is not a manifest: datasets/_chain.py reads the manifest's own kind).
    assert doc["verified"] is False and "other.bin" in doc["failures"][0]["message"], doc
    assert snapshot(proj.root) == files and proj.objects() == stored


LAYOUT_ARGS = ("--layout", "root.layout", "--layout-key", "keys/owner.pub")
HOSTILE = "s3://mlflow/x\x1b]8;;http://evil\x07<script>alert(1)</script>|`**b**`\n"


def test_a_hostile_dataset_source_is_inert_in_trace_inspect_and_report(
    proj: Project,
) -> None:
    def change(doc: dict[str, Any]) -> None:
        doc["environment"]["datasets"]["products"][proj.manifest]["source"] = HOSTILE

    link = _resign(proj.root / ".provenance/links", "ingest", "keys/data-eng", lambda d: None)
    link = _resign(proj.root / ".provenance/links", "ingest", "keys/data-eng", change)
    outputs = {
        "trace": proj.cli("trace", proj.manifest),
        "inspect": proj.cli("inspect", str(link)),
        "report-md": proj.cli("report", *LAYOUT_ARGS, "--format", "markdown"),
    }
    r = proj.cli("report", *LAYOUT_ARGS, "-o", "r.html")
    html = (proj.root / "r.html").read_text()
    for name, out in outputs.items():
        text = out.out + out.err
        assert "\x1b" not in text and "\x07" not in text, name
        if name.startswith("report"):
            assert "<script>" not in text, name
    assert "<script>alert" not in html and "\x1b" not in html
    assert r.code in (0, 1), r.err
    assert os.path.exists(proj.root / "r.html")
