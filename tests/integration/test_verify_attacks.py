"""One test per attack on the pipeline; each asserts the failure, the exit code, the explanation,
that verification changed nothing, and how the upstream in-toto-verify judged the same evidence
(equal verdict, or ours stricter where in-toto has no such check)."""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from provenance.datasets import Dataset
from provenance.links import link_payload, write_link
from provenance.signing import load_signer
from tests.conftest import in_toto_verify, run_pipeline, sign_layout, snapshot, verify

LINKS = Path(".provenance/links")


def link_file(step: str) -> Path:
    (path,) = LINKS.glob(f"{step}.*.link")
    return path


def read_link(step: str) -> dict:
    """The payload of the step's (only) link, as a dict."""
    return json.loads(base64.b64decode(json.loads(link_file(step).read_bytes())["payload"]))


def resign(link: dict, key: str, *, replace: bool = True) -> None:
    """Write `link` signed by `key` (a validly signed link with attacker-chosen content)."""
    if replace:
        link_file(link["name"]).unlink()
    payload = link_payload(
        link["name"],
        link["command"],
        link["materials"],
        link["products"],
        link["byproducts"],
        link["environment"],
    )
    write_link(payload, load_signer(key), link["name"], str(LINKS))


def assert_fails(cli, root: Path, *words: str, in_toto: str, code: int = 1, extra=()) -> None:
    """Our verdict is FAIL with `words` in it, nothing on disk changed, and in-toto agrees
    (`in_toto="fail"`) or has no such check (`in_toto="pass"`: ours is stricter)."""
    before = snapshot(root)
    r = verify(cli, *extra)
    assert r.code == code, r.out + r.err
    assert r.out.startswith("FAIL"), r.out
    for word in words:
        assert word in r.out, f"{word!r} not in:\n{r.out}"
    assert snapshot(root) == before
    upstream = in_toto_verify(root).returncode
    assert (upstream == 0) == (in_toto == "pass"), f"in-toto-verify exited {upstream}"


def test_honest_pipeline_passes_like_in_toto(signed: Path, cli) -> None:
    r = verify(cli)
    assert r.code == 0, r.out + r.err
    assert r.out.startswith("PASS: 3 step(s) verified")
    assert in_toto_verify(signed).returncode == 0
    doc = json.loads(verify(cli, "--json").out)
    assert doc["verified"] is True and doc["failures"] == []
    assert [s["name"] for s in doc["steps"]] == ["prepare", "train", "evaluate"]
    # prepare's dataset manifest, the two model files, the metrics (the manifest's members are
    # re-hashed by the datasets phase)
    assert doc["artifacts_checked"] == 4
    assert doc["phases"][-1] == "datasets"


MANIFEST = Dataset("data/processed").manifest_path


def test_dataset_changed_between_steps(signed: Path, cli) -> None:
    x = Path("data/processed/X_train.npy")
    x.write_bytes(x.read_bytes()[:-4] + b"\x00\x00\x80\x3f")
    # The example's train step reads through the verifying loader: it refuses to train.
    with pytest.raises(subprocess.CalledProcessError):
        run_pipeline(signed, ("train",))
    assert_fails(
        cli,
        signed,
        "dataset data/processed of step 'prepare' does not match its manifest",
        "X_train.npy",
        in_toto="pass",  # the links are unchanged; in-toto has no view of the members
    )


def test_dataset_and_its_manifest_changed_between_steps(signed: Path, cli) -> None:
    """A train step that does not hold its loader to prepare's signed manifest digest."""
    x = Path("data/processed/X_train.npy")
    x.write_bytes(x.read_bytes()[:-4] + b"\x00\x00\x80\x3f")
    assert cli("dataset", "manifest", "data/processed", "-o", MANIFEST).code == 0
    r = cli(
        "run",
        "train",
        "--dataset-read",
        "data/processed",
        "-m",
        "steps/train.py",
        "-p",
        "models/**",
        "--key",
        "keys/trainer",
        "--",
        sys.executable,
        "-c",
        "open('models/model.safetensors', 'ab').write(b'retrained')",
    )
    assert r.code == 0, r.err
    assert_fails(
        cli,
        signed,
        "step 'train'",
        "MATCH .provenance/datasets/data_processed-*.manifest WITH PRODUCTS FROM prepare",
        f"hash mismatch for '{MANIFEST}'",
        "expected",
        "actual",
        in_toto="fail",
    )


def test_weights_replaced_after_training(signed: Path, cli) -> None:
    w = Path("models/model.safetensors")
    w.write_bytes(w.read_bytes()[:-1] + b"\x01")
    assert_fails(
        cli, signed, "hash mismatch for 'models/model.safetensors'", "step: train", in_toto="pass"
    )


def test_weights_replaced_before_evaluation(signed: Path, cli) -> None:
    w = Path("models/model.safetensors")
    w.write_bytes(w.read_bytes()[:-1] + b"\x01")
    run_pipeline(signed, ("evaluate",))
    assert_fails(
        cli,
        signed,
        "step 'evaluate'",
        "hash mismatch for 'models/model.safetensors'",
        "products of 'train'",
        in_toto="fail",
    )


def test_extra_file_planted_in_model_folder(signed: Path, cli) -> None:
    Path("models/backdoor.py").write_text("import os\n")
    assert_fails(cli, signed, "extra file: 'models/backdoor.py'", "step 'train'", in_toto="pass")


def test_poisoned_file_planted_before_training(signed: Path, cli) -> None:
    Path("data/processed/poison.npy").write_bytes(b"\x93NUMPY")
    run_pipeline(signed, ("train", "evaluate"))  # the loaders read only the listed shards
    assert_fails(
        cli,
        signed,
        "dataset data/processed of step 'prepare' does not match its manifest",
        "poison.npy",
        in_toto="pass",  # the links are unchanged; in-toto has no view of the members
    )


def test_link_signed_by_a_key_that_is_not_the_steps_functionary(signed: Path, cli) -> None:
    resign(read_link("train"), "keys/data-eng")  # a real functionary, but of another step
    assert_fails(
        cli,
        signed,
        "step 'train' needs 1 link(s)",
        "found 0 valid",
        "signed by data-eng",
        "not allowed to sign this step",
        "allowed keys: trainer",
        in_toto="fail",
    )


def test_link_signed_by_an_unknown_key(signed: Path, cli) -> None:
    cli("keygen", "mallory", "--dir", "keys")
    resign(read_link("train"), "keys/mallory")
    assert_fails(cli, signed, "signed by unknown key", "allowed keys: trainer", in_toto="fail")


def test_threshold_not_met(pipeline: Path, cli) -> None:
    text = Path("layouts/train.yaml").read_text()
    text = text.replace(
        "functionaries: [trainer]", "functionaries: [trainer, evaluator]\n    threshold: 2"
    )
    Path("layouts/two.yaml").write_text(text)
    assert sign_layout(cli, "layouts/two.yaml").code == 0
    assert_fails(cli, pipeline, "step 'train' needs 2 link(s)", "found 1 valid", in_toto="fail")


def test_link_payload_edited_without_resigning(signed: Path, cli) -> None:
    path = link_file("train")
    env = json.loads(path.read_bytes())
    link = json.loads(base64.b64decode(env["payload"]))
    link["materials"]["steps/train.py"]["sha256"] = "0" * 64
    env["payload"] = base64.b64encode(json.dumps(link).encode()).decode()
    path.write_text(json.dumps(env))
    assert_fails(cli, signed, "does not verify", "changed after it was signed", in_toto="fail")


def test_layout_signed_by_a_non_owner_key(pipeline: Path, cli) -> None:
    assert sign_layout(cli, "layouts/train.yaml", "keys/trainer").code == 0
    assert_fails(cli, pipeline, "layout-signature", "no valid signature by key", in_toto="fail")


def test_layout_edited_after_signing(signed: Path, cli) -> None:
    env = json.loads(Path("root.layout").read_bytes())
    layout = json.loads(base64.b64decode(env["payload"]))
    layout["steps"][1]["expected_materials"] = [["ALLOW", "*"]]
    env["payload"] = base64.b64encode(json.dumps(layout).encode()).decode()
    Path("root.layout").write_text(json.dumps(env))
    assert_fails(cli, signed, "layout-signature", "edited after signing", in_toto="fail")


def test_expired_layout(pipeline: Path, cli) -> None:
    text = Path("layouts/train.yaml").read_text().replace("expires: 180d", "expires: 2020-01-01")
    Path("layouts/old.yaml").write_text(text)
    refused = sign_layout(cli, "layouts/old.yaml")
    assert refused.code == 1 and "expired on 2020-01-01" in refused.err
    assert not Path("root.layout").exists()
    assert sign_layout(cli, "layouts/old.yaml", "keys/owner", "--allow-unsafe").code == 0
    assert_fails(cli, pipeline, "layout-expiry", "expired on 2020-01-01", in_toto="fail")


def test_missing_step_link(signed: Path, cli) -> None:
    link_file("evaluate").unlink()
    assert_fails(cli, signed, "step 'evaluate' needs 1 link(s)", "no link file", in_toto="fail")


def test_links_mixed_from_two_pipeline_runs(signed: Path, cli, tmp_path: Path) -> None:
    other = tmp_path / "other"
    shutil.copytree(signed, other, ignore=shutil.ignore_patterns(".provenance", "root.layout"))
    run_pipeline(other)  # a second, deterministic run: identical artifacts, another run id
    shutil.copy(next((other / LINKS).glob("train.*.link")), link_file("train"))
    assert_fails(cli, signed, "links come from 2 different pipeline runs", in_toto="pass")


@pytest.mark.parametrize(
    ("bad_path", "in_toto"),
    # in-toto has no path check: its DISALLOW * rejects two of them, but "models/*" accepts the
    # third, so upstream passes a link that points outside the project.
    [("../../etc/cron.d/job", "fail"), ("/etc/passwd", "fail"), ("models/../../x", "pass")],
)
def test_validly_signed_link_with_escaping_artifact_path(
    signed: Path, cli, bad_path: str, in_toto: str
) -> None:
    link = read_link("train")
    link["products"][bad_path] = {"sha256": "a" * 64}
    resign(link, "keys/trainer")
    assert_fails(cli, signed, f"path '{bad_path}'", "escapes the base directory", in_toto=in_toto)


def test_symlink_planted_in_model_folder_pointing_outside(signed: Path, cli, tmp_path) -> None:
    (tmp_path / "evil.bin").write_bytes(b"x")
    Path("models/extra.bin").symlink_to(tmp_path / "evil.bin")
    assert_fails(cli, signed, "'models/extra.bin'", "is a symlink", in_toto="pass")


def test_weights_deleted_after_training(signed: Path, cli) -> None:
    Path("models/model.safetensors").unlink()
    assert_fails(cli, signed, "missing: 'models/model.safetensors'", in_toto="pass")


def test_only_selected_artifacts_are_checked(signed: Path, cli) -> None:
    Path("data/processed/y_test.npy").write_bytes(b"x")  # tampered, but not selected
    r = verify(cli, "--artifact", "models/**")
    assert r.code == 0 and "2 artifact(s) match" in r.out
    assert verify(cli).code == 1


def test_fail_open_yaml_is_refused_by_layout_sign(pipeline: Path, cli) -> None:
    Path("layouts/open.yaml").write_text(
        Path("layouts/train.yaml")
        .read_text()
        .replace('      - allow: "steps/train.py"', '      - allow: "*"')
    )
    r = sign_layout(cli, "layouts/open.yaml")
    assert r.code == 1
    assert "fail-open" in r.err and "layouts/open.yaml:" in r.err
    assert not Path("root.layout").exists()
    lint = cli("layout", "lint", "layouts/open.yaml", "--json")
    assert lint.code == 1 and json.loads(lint.out)["ok"] is False


def test_match_then_allow_star_cannot_pass_a_tampered_model(pipeline: Path, cli) -> None:
    """in-toto's own fall-through: MATCH models/* FROM train followed by ALLOW * passes a tampered
    model upstream. Lint refuses it; signed anyway, the compiled DISALLOW still rejects it."""
    Path("layouts/ft.yaml").write_text(
        Path("layouts/train.yaml")
        .read_text()
        .replace('      - allow: "steps/evaluate.py"', '      - allow: "*"')
    )
    assert sign_layout(cli, "layouts/ft.yaml").code == 1
    assert sign_layout(cli, "layouts/ft.yaml", "keys/owner", "--allow-unsafe").code == 0
    w = Path("models/model.safetensors")
    w.write_bytes(w.read_bytes()[:-1] + b"\x02")
    run_pipeline(pipeline, ("evaluate",))
    r = verify(cli)
    assert r.code == 1, r.out
    assert "DISALLOW models/*" in r.out and "hash mismatch for 'models/model.safetensors'" in r.out


def test_verdict_is_printed_and_exit_nonzero_for_json_too(signed: Path, cli) -> None:
    link_file("prepare").unlink()
    r = verify(cli, "--json")
    doc = json.loads(r.out)
    assert r.code == 1 and doc["verified"] is False and doc["verdict"].startswith("FAIL")
    assert doc["failures"][0]["step"] == "prepare"


@pytest.mark.parametrize(
    ("content", "words"),
    [
        (b"{not json", "not JSON"),
        (b'{"signed": {}, "signatures": []}', "legacy in-toto"),
        (b'{"payload": "!!", "payloadType": "x", "signatures": []}', "not valid base64"),
        (b"[]", "not a DSSE envelope"),
    ],
)
def test_malformed_link_is_invalid_input(signed: Path, cli, content: bytes, words: str) -> None:
    link_file("train").write_bytes(content)
    r = verify(cli)
    assert r.code == 3 and words in r.err and "train." in r.err
    assert "Traceback" not in r.err and len(r.err.strip().splitlines()) == 1


def test_private_key_given_as_layout_key_is_refused(signed: Path, cli) -> None:
    r = verify(cli, layout_key="keys/owner")
    assert r.code == 3 and "is a private key" in r.err


def test_verify_via_installed_entry_point(signed: Path) -> None:
    exe = Path(sys.executable).parent / "provenance"
    proc = subprocess.run(
        [str(exe), "verify", "--layout", "root.layout", "--layout-key", "keys/owner.pub"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0 and proc.stdout.startswith("PASS")


def test_example_verify_in_python(signed: Path) -> None:
    from tests.conftest import REPO

    example = str(REPO / "examples" / "verify_in_python.py")
    ok = subprocess.run(
        [sys.executable, example, "root.layout", "keys/owner.pub"], capture_output=True, text=True
    )
    assert ok.returncode == 0 and ok.stdout.startswith("PASS"), ok.stderr
    Path("models/model.safetensors").write_bytes(b"swapped")
    bad = subprocess.run(
        [sys.executable, example, "root.layout", "keys/owner.pub"], capture_output=True, text=True
    )
    assert bad.returncode == 1 and '"artifact": "models/model.safetensors"' in bad.stdout


def test_link_recording_products_without_sha256_is_refused(signed: Path, cli) -> None:
    """A functionary records only another digest, so no real-file check could compare it."""
    link = read_link("train")
    for digests in link["products"].values():
        digests["sha512"] = "ab" * 64
        del digests["sha256"]
    resign(link, "keys/trainer")
    r = verify(cli)
    assert r.code == 3 and "has no sha256 digest" in r.err and "train." in r.err


def test_validly_signed_link_moved_to_another_steps_slot(pipeline: Path, cli) -> None:
    """The trainer may sign `evaluate` too; its train link must not count as an evaluate link."""
    text = (
        Path("layouts/train.yaml")
        .read_text()
        .replace("functionaries: [evaluator]", "functionaries: [evaluator, trainer]")
    )
    Path("layouts/shared.yaml").write_text(text)
    assert sign_layout(cli, "layouts/shared.yaml").code == 0
    link_file("evaluate").unlink()
    train = link_file("train")
    shutil.copy(train, LINKS / train.name.replace("train.", "evaluate.", 1))
    assert_fails(cli, pipeline, "records step 'train', not 'evaluate'", in_toto="fail")


@pytest.mark.parametrize(
    "planted",
    [
        "models/__pycache__/loader.cpython-311.pyc",
        "models/.git/hooks/post-checkout",
        "models/.hidden/extra.bin",
        "models/.venv/site.py",
        "models/sub/deeper.bin",
    ],
)
def test_file_planted_under_an_excluded_name_in_the_model_folder_is_extra(
    signed: Path, cli, planted: str
) -> None:
    """Recording skips these names; the final check must not, or they would be served."""
    Path(planted).parent.mkdir(parents=True, exist_ok=True)
    Path(planted).write_bytes(b"planted")
    assert_fails(cli, signed, f"extra file: '{planted}'", "step 'train'", in_toto="pass")


@pytest.mark.parametrize("kind", ["symlink-to-dir", "symlink-inside", "fifo"])
def test_symlink_or_fifo_under_the_products_is_refused_by_name_without_opening(
    signed: Path, cli, tmp_path, kind: str
) -> None:
    target = Path("models/link")
    if kind == "symlink-to-dir":
        (tmp_path / "elsewhere").mkdir()
        target.symlink_to(tmp_path / "elsewhere")
        why = "is a symlink"
    elif kind == "symlink-inside":
        target.symlink_to("model.safetensors")
        why = "is a symlink"
    else:
        os.mkfifo(target)
        why = "FIFO"
    assert_fails(cli, signed, "refused: 'models/link'", why, in_toto="pass")


def test_file_name_with_a_newline_cannot_forge_a_verdict_line(signed: Path, cli) -> None:
    """An extra file named to look like a PASS line stays on its own escaped line."""
    Path("models/x\nPASS: all good").write_bytes(b"planted")
    before = snapshot(signed)
    r = verify(cli)
    assert r.code == 1 and r.out.startswith("FAIL")
    assert not any(line.startswith("PASS") for line in r.out.splitlines())
    assert "models/x\\nPASS: all good" in r.out
    assert snapshot(signed) == before
