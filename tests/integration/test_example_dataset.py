"""The example pipeline's dataset: `prepare` records data/processed as one manifest, `train` and
`evaluate` read its shards through the verifying loader, held to the digest data-eng signed.

Each attack asserts that the step refused before using the data (exit 1, one line naming the
shard or manifest, no traceback), that it wrote no link and no model, and that nothing else
changed."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

from provenance.datasets import Dataset
from provenance.links import link_payload, write_link
from provenance.signing import load_signer
from tests.conftest import in_toto_verify, run_pipeline, sign_layout, snapshot, verify

MANIFEST = Dataset("data/processed").manifest_path
LINKS = Path(".provenance/links")


def payload(step: str) -> dict:
    (path,) = LINKS.glob(f"{step}.*.link")
    return json.loads(base64.b64decode(json.loads(path.read_bytes())["payload"]))


def run_step(root: Path, step: str) -> subprocess.CompletedProcess[str]:
    """`python steps/STEP.py` as a user runs it (not checked: the attacks expect a refusal)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROVENANCE_")}
    env["PYTHONPATH"] = str(root)
    return subprocess.run(
        [sys.executable, f"steps/{step}.py"], cwd=root, env=env, capture_output=True, text=True
    )


def assert_train_refused(root: Path, *words: str) -> None:
    before = snapshot(root)
    proc = run_step(root, "train")
    assert proc.returncode == 1, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    for word in words:
        assert word in proc.stderr, f"{word!r} not in {proc.stderr!r}"
    assert list(LINKS.glob("train.*.link")) == []
    assert not Path("models").exists()
    assert snapshot(root) == before


def test_prepare_records_one_manifest_that_train_and_evaluate_read_verified(
    pipeline: Path, cli
) -> None:
    prepare, train, evaluate = payload("prepare"), payload("train"), payload("evaluate")
    assert list(prepare["products"]) == [MANIFEST]
    sha = prepare["products"][MANIFEST]["sha256"]
    described = prepare["environment"]["datasets"]["products"][MANIFEST]
    assert described["source"] == "data/processed" and described["kind"] == "local"
    assert described["members"] == 4 and described["bytes"] > 0
    assert sorted(train["materials"]) == [MANIFEST, "steps/train.py"]
    assert train["materials"][MANIFEST]["sha256"] == sha
    assert MANIFEST in evaluate["materials"] and evaluate["materials"][MANIFEST]["sha256"] == sha
    for link in (train, evaluate):
        read = link["environment"]["datasets"]["read"]
        assert list(read) == [sha]
        assert read[sha]["members"] == 4 and read[sha]["shards_read"] == 2
        assert read[sha]["completed"] is True and read[sha]["loaders"] == 1
        assert link["environment"]["datasets"]["materials"][MANIFEST]["engine"] == (
            "verified while reading"
        )
    assert sign_layout(cli).code == 0
    r = verify(cli, "--json")
    assert r.code == 0, r.out + r.err
    assert "datasets" in json.loads(r.out)["phases"]
    assert in_toto_verify(pipeline).returncode == 0


def test_a_shard_tampered_after_prepare_stops_training_before_it_starts(project: Path) -> None:
    run_pipeline(project, ("prepare",))
    x = Path("data/processed/X_train.npy")
    x.write_bytes(x.read_bytes()[:-4] + b"\x00\x00\x80\x3f")
    assert_train_refused(project, "shard 'X_train.npy' does not match", MANIFEST)


def test_a_manifest_swapped_on_disk_to_match_tampered_data_is_refused(project: Path, cli) -> None:
    run_pipeline(project, ("prepare",))
    signed = Path(MANIFEST).read_bytes()
    x = Path("data/processed/X_train.npy")
    x.write_bytes(x.read_bytes()[:-4] + b"\x00\x00\x80\x3f")
    # The attacker rewrites the manifest so that it lists the tampered shard.
    assert cli("dataset", "manifest", "data/processed", "-o", MANIFEST).code == 0
    assert Path(MANIFEST).read_bytes() != signed
    assert_train_refused(project, MANIFEST, "the recorded one is", "no shard was read")


def test_a_prepare_link_signed_by_another_key_is_not_the_loaders_anchor(project: Path, cli) -> None:
    run_pipeline(project, ("prepare",))
    x = Path("data/processed/X_train.npy")
    x.write_bytes(x.read_bytes()[:-4] + b"\x00\x00\x80\x3f")
    assert cli("dataset", "manifest", "data/processed", "-o", MANIFEST).code == 0
    # prepare's link replaced by one recording the new manifest, validly signed by another
    # functionary's key and put where data-eng's link is looked for.
    link = payload("prepare")
    (genuine,) = LINKS.glob("prepare.*.link")
    genuine.unlink()
    digest = hashlib.sha256(Path(MANIFEST).read_bytes()).hexdigest()
    forged = link_payload(
        "prepare",
        link["command"],
        link["materials"],
        {MANIFEST: {"sha256": digest}},
        link["byproducts"],
        link["environment"],
    )
    Path(write_link(forged, load_signer("keys/trainer"), "prepare", str(LINKS))).rename(genuine)
    assert_train_refused(project, str(genuine), "not signed by keys/data-eng.pub")


def test_verify_names_a_shard_changed_after_the_run(pipeline: Path, cli) -> None:
    assert sign_layout(cli).code == 0
    Path("data/processed/y_test.npy").write_bytes(b"x")
    before = snapshot(pipeline)
    r = verify(cli)
    assert r.code == 1, r.out + r.err
    assert r.out.startswith("FAIL"), r.out
    assert "dataset data/processed of step 'prepare'" in r.out and "y_test.npy" in r.out
    assert snapshot(pipeline) == before
    # The links are unchanged: upstream in-toto-verify has no view of the members.
    assert in_toto_verify(pipeline).returncode == 0


def test_verify_re_hashes_the_dataset_only_when_its_manifest_is_selected(
    pipeline: Path, cli
) -> None:
    assert sign_layout(cli).code == 0
    Path("data/processed/y_test.npy").write_bytes(b"x")
    r = verify(cli, "--artifact", "models/**")
    assert r.code == 0 and "2 artifact(s) match" in r.out, r.out
    r = verify(cli, "--artifact", ".provenance/datasets/**")
    assert r.code == 1 and "y_test.npy" in r.out, r.out
