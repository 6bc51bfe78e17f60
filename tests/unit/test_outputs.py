"""`-o` never replaces an input of the same command or a key; odd outputs are exit 2, one line,
and nothing on disk changes."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.conftest import links_in, snapshot
from tests.unit.test_bad_input import one_line_refusal


def sign(cli, *extra: str, key: str = "keys/owner"):
    return cli("layout", "sign", "layouts/train.yaml", "--key", key, *extra)


@pytest.mark.parametrize(
    ("output", "words"),
    [
        ("layouts/train.yaml", "would overwrite layouts/train.yaml, an input"),
        ("layouts/../layouts/train.yaml", "an input of this command"),
        ("keys/owner", "would overwrite keys/owner, an input"),
        ("keys/trainer", "keys directory"),
        ("keys/owner.pub", "keys directory"),
        ("keys", "is a directory"),
        ("layouts/train.yaml/x", "not a directory"),
    ],
    ids=["own-yaml", "own-yaml-dotdot", "own-key", "other-key", "public-key", "dir", "under-file"],
)
def test_layout_sign_output_over_input_or_key_is_refused(
    project: Path, cli, output: str, words: str
) -> None:
    before = snapshot(project)
    r = sign(cli, "-o", output)
    one_line_refusal(r, 2, f"{output}:", words)
    assert snapshot(project) == before


def test_layout_sign_output_through_symlink_or_hard_link_is_refused(project: Path, cli) -> None:
    os.symlink("layouts/train.yaml", "sym.layout")
    os.link("layouts/train.yaml", "hard.layout")
    os.symlink("keys/owner", "key.layout")
    before = snapshot(project)
    for output in ("sym.layout", "hard.layout", "key.layout"):
        r = sign(cli, "-o", output)
        one_line_refusal(r, 2, f"{output}:", "an input of this command")
    assert snapshot(project) == before
    assert os.path.islink("sym.layout") and os.path.islink("key.layout")


def test_layout_sign_over_a_key_outside_the_keys_dir_is_refused(project: Path, cli) -> None:
    Path("vault").mkdir()
    Path("vault/ci.pem").write_bytes(Path("keys/evaluator").read_bytes())
    before = snapshot(project)
    r = sign(cli, "-o", "vault/ci.pem")
    one_line_refusal(r, 2, "vault/ci.pem:", "would overwrite a key file")
    assert snapshot(project) == before


def test_layout_sign_key_elsewhere_protects_its_directory(project: Path, cli) -> None:
    Path("owner-keys").mkdir()
    os.replace("keys/owner", "owner-keys/owner")
    Path("owner-keys/README").write_text("keep")
    r = sign(cli, "-o", "owner-keys/README", key="owner-keys/owner")
    one_line_refusal(r, 2, "owner-keys/README:", "keys directory owner-keys")
    assert Path("owner-keys/README").read_text() == "keep"


def test_layout_sign_to_a_fresh_or_previous_output_still_works(project: Path, cli) -> None:
    assert sign(cli, "-o", "root.layout").code == 0
    assert sign(cli, "-o", "root.layout").code == 0  # re-signing replaces its own output
    assert sign(cli, "-o", "out/new/root.layout").code == 0


@pytest.fixture
def recorded(project: Path, cli) -> Path:
    """A model file recorded by a `train` step (cheap: no real training), and a layout for it."""
    Path("models").mkdir()
    Path("models/model.safetensors").write_bytes(b"weights")
    r = cli("run", "train", "-p", "models/**", "--key", "keys/trainer", "--", "true")
    assert r.code == 0, r.err
    Path("one-step.yaml").write_text(
        "expires: 30d\nfunctionaries:\n  trainer: keys/trainer.pub\nsteps:\n"
        "  - name: train\n    functionaries: [trainer]\n"
        '    products:\n      - create: "models/*"\n'
    )
    r = cli("layout", "sign", "one-step.yaml", "--key", "keys/owner", "-o", "root.layout")
    assert r.code == 0, r.err
    return project


def attest(cli, output: str, *extra: str):
    return cli(
        "slsa",
        "attest",
        "--subject",
        "models/**",
        "--key",
        "keys/trainer",
        "--layout",
        "root.layout",
        "--layout-key",
        "keys/owner.pub",
        "-o",
        output,
        *extra,
    )


@pytest.mark.parametrize(
    ("output", "words"),
    [
        ("models/model.safetensors", "would overwrite models/model.safetensors, an input"),
        ("keys/trainer", "an input of this command"),
        ("keys/owner", "keys directory"),
        ("LINK", "an input of this command"),
        ("root.layout", "an input of this command"),
        ("models", "is a directory"),
    ],
    ids=["subject", "own-key", "other-key", "link", "layout", "dir"],
)
def test_slsa_attest_output_over_input_or_key_is_refused(
    recorded: Path, cli, output: str, words: str
) -> None:
    if output == "LINK":
        output = f".provenance/links/{links_in(recorded)[0]}"
    before = snapshot(recorded)
    r = attest(cli, output)
    one_line_refusal(r, 2, f"{output}:", words)
    assert snapshot(recorded) == before


def test_slsa_attest_output_hard_linked_to_the_model_is_refused(recorded: Path, cli) -> None:
    os.link("models/model.safetensors", "model.intoto.jsonl")
    before = snapshot(recorded)
    r = attest(cli, "model.intoto.jsonl")
    one_line_refusal(r, 2, "model.intoto.jsonl:", "an input of this command")
    assert snapshot(recorded) == before


def test_slsa_attest_to_a_fresh_output_still_works(recorded: Path, cli) -> None:
    r = attest(cli, "model.intoto.jsonl")
    assert r.code == 0, r.err
    assert Path("model.intoto.jsonl").stat().st_size > 0


def test_keygen_force_replaces_keys_but_never_another_file(project: Path, cli) -> None:
    before = snapshot(project)
    r = cli("keygen", "train.yaml", "--dir", "layouts", "--force")
    one_line_refusal(r, 3, "layouts/train.yaml:", "not a key file")
    r = cli("keygen", "owner", "--dir", "keys")
    one_line_refusal(r, 3, "keys/owner:", "already exists")
    assert snapshot(project) == before
    assert cli("keygen", "owner", "--dir", "keys", "--force").code == 0
    assert Path("keys/owner").read_bytes() != before["keys/owner"]


def test_keygen_into_an_unwritable_place_is_one_line(project: Path, cli) -> None:
    r = cli("keygen", "x", "--dir", "layouts/train.yaml")
    one_line_refusal(r, 2, "layouts/train.yaml/x:", "cannot write")


@pytest.mark.parametrize(
    ("dest", "words"),
    [
        ("layouts/train.yaml", "exists and is not a directory"),
        ("layouts", "exists and is not empty"),
        ("link-to-dir", "is a symlink"),
        ("layouts/train.yaml/serving", "not a directory"),
    ],
    ids=["file", "non-empty", "symlink", "under-file"],
)
def test_fetch_to_an_odd_destination_is_refused_before_any_download(
    project: Path, cli, dest: str, words: str
) -> None:
    Path("empty").mkdir()
    os.symlink("empty", "link-to-dir")
    before = snapshot(project)
    # An unreachable tracking URI: the destination is checked first, so this is exit 2, not 4.
    r = cli(
        "fetch",
        "models:/digits@champion",
        dest,
        "--gate-key",
        "keys/owner.pub",
        "--tracking-uri",
        "http://127.0.0.1:9",
    )
    one_line_refusal(r, 2, f"{dest}:", words)
    assert snapshot(project) == before


def test_run_with_an_unusable_links_directory_fails_before_the_command(project: Path, cli) -> None:
    before = snapshot(project)
    for links in ("layouts/train.yaml", "layouts/train.yaml/links"):
        r = cli(
            "run",
            "s",
            "-m",
            "data",
            "--links",
            links,
            "--key",
            "keys/trainer",
            "--",
            "touch",
            "ran",
        )
        one_line_refusal(r, 2, f"{links}:", "links directory")
    assert not Path("ran").exists() and snapshot(project) == before
