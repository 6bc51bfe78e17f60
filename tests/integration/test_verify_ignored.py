"""`verify` names every link file it did not use and why, instead of only "found 0"."""

from __future__ import annotations

import base64
import json
import shutil
from pathlib import Path

from provenance.links import link_filename, link_payload, write_link
from provenance.signing import load_public_key, load_signer
from tests.conftest import run_pipeline, sign_layout, snapshot, verify

LINKS = Path(".provenance/links")


def only(step: str) -> Path:
    (path,) = LINKS.glob(f"{step}.*.link")
    return path


def payload(step: str) -> dict:
    return json.loads(base64.b64decode(json.loads(only(step).read_bytes())["payload"]))


def write(link: dict, key: str, as_step: str) -> Path:
    """`link` signed by `key`, written under the file name of step `as_step`."""
    data = link_payload(
        link["name"],
        link["command"],
        link["materials"],
        link["products"],
        link["byproducts"],
        link["environment"],
    )
    signer = load_signer(key)
    path = Path(write_link(data, signer, link["name"], str(LINKS)))
    target = LINKS / link_filename(as_step, signer.public_key.keyid)
    if path != target:
        path.rename(target)
    return target


def ignored_json(cli, step: str | None = None) -> list[dict[str, str]]:
    r = verify(cli, "--json")
    doc = json.loads(r.out)
    if step is None:
        return doc["ignored"]
    return next(s["ignored"] for s in doc["steps"] if s["name"] == step)


def test_old_key_after_rotation_is_named(signed: Path, cli) -> None:
    # The trainer's key is rotated: the layout now lists the new key, the old link remains.
    old = only("train").name
    assert cli("keygen", "trainer-2026", "--dir", "keys").code == 0
    yaml = Path("layouts/train.yaml").read_text()
    Path("layouts/rotated.yaml").write_text(
        yaml.replace("../keys/trainer.pub", "../keys/trainer-2026.pub")
    )
    assert sign_layout(cli, "layouts/rotated.yaml").code == 0
    before = snapshot(signed)
    r = verify(cli)
    assert r.code == 1 and "found 0 valid" in r.out
    assert "ignored link file(s): 1" in r.out
    assert f"{old} (step 'train'): signed by unknown key {old.split('.')[1]}" in r.out
    assert "an old key rotated out" in r.out
    (entry,) = ignored_json(cli, "train")
    assert entry["file"] == old and "rotated out" in entry["reason"]
    assert snapshot(signed) == before


def test_key_of_another_step_is_named(signed: Path, cli) -> None:
    only("train").unlink()
    path = write(payload("prepare") | {"name": "train"}, "keys/data-eng", "train")
    r = verify(cli)
    assert r.code == 1
    assert f"{path.name} (step 'train'): signed by data-eng" in r.out
    assert "not allowed to sign this step" in r.out


def test_link_naming_another_step_is_named(signed: Path, cli) -> None:
    # Validly signed by the trainer, filed as train, but the link inside says "evaluate".
    link = payload("train") | {"name": "evaluate"}
    only("train").unlink()
    path = write(link, "keys/trainer", "train")
    r = verify(cli)
    assert r.code == 1
    assert f"{path.name} (step 'train'): records step 'evaluate' inside" in r.out
    (entry,) = ignored_json(cli, "train")
    assert entry == {"file": path.name, "reason": "records step 'evaluate' inside"}


def test_files_no_step_reads_are_listed_and_change_nothing(signed: Path, cli) -> None:
    shutil.copy(only("train"), LINKS / "finetune.0123abcd.link")
    shutil.copy(only("train"), LINKS / "train.link")
    r = verify(cli)
    assert r.code == 0 and r.out.startswith("PASS"), r.out
    assert "finetune.0123abcd.link: names step 'finetune', which the layout does not have" in r.out
    assert "train.link: not named <step>.<keyid[:8]>.link, so no step reads it" in r.out
    assert {e["file"] for e in ignored_json(cli)} == {"finetune.0123abcd.link", "train.link"}


def test_stale_link_from_a_previous_run_is_named(signed: Path, cli, tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(signed, other, ignore=shutil.ignore_patterns(".provenance", "root.layout"))
    run_pipeline(other)  # same artifacts, another run id
    stale = only("train")
    shutil.copy(next((other / LINKS).glob("train.*.link")), stale)
    r = verify(cli)
    assert r.code == 1 and "links come from 2 different pipeline runs" in r.out
    run = json.loads(base64.b64decode(json.loads(stale.read_bytes())["payload"]))
    rid = run["environment"]["pipeline_run_id"][:16]
    assert f"train ({stale.name}): from pipeline run {rid}" in r.out
    assert "a stale link from a previous run?" in r.out


def test_accepted_links_report_their_run_id(signed: Path, cli) -> None:
    doc = json.loads(verify(cli, "--json").out)
    keyid = load_public_key("keys/trainer.pub").keyid
    (train,) = [s for s in doc["steps"] if s["name"] == "train"]
    assert train["links"][0]["keyid"] == keyid
    assert train["links"][0]["run_id"] == doc["run_id"] and train["ignored"] == []
