"""FIFOs, sockets, devices, symlinks and non-UTF-8 names as artifacts: refused by name, never
opened (no hang), the same way when a step records and when the products are checked."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from provenance.errors import ArtifactError
from provenance.hashing import hash_artifacts, hash_file, hash_paths, walk_all
from tests.conftest import links_in, snapshot, verify
from tests.unit.test_bad_input import one_line_refusal
from tests.unit.test_fs import hang_guard

BAD_NAME = b"data/raw/bad\xff.csv"


@pytest.fixture
def unix_socket(tmp_path: Path) -> Iterator[str]:
    """A bound AF_UNIX socket at data/raw/sock (relative to the project cwd)."""
    sock = socket.socket(socket.AF_UNIX)
    path = "data/raw/sock"
    sock.bind(path)  # relative: stays under the 108-byte sun_path limit
    try:
        yield path
    finally:
        sock.close()


def run_step(cli, *patterns: str):
    args = [a for p in patterns for a in ("-m", p)]
    return cli("run", "prepare", *args, "--key", "keys/data-eng", "--", "touch", "ran")


# -- recording: refused by name, the command never runs, no link -----------------------------------


def test_fifo_material_in_a_directory_is_refused_by_name_without_hanging(
    project: Path, cli
) -> None:
    os.mkfifo("data/raw/pipe")
    before = snapshot(project)
    with hang_guard():
        r = run_step(cli, "data/raw")
    one_line_refusal(r, 3, "data/raw/pipe: is a FIFO")
    assert not Path("ran").exists() and not links_in(project) and snapshot(project) == before


def test_fifo_named_directly_or_through_a_symlink_is_refused(project: Path, cli) -> None:
    os.mkfifo("data/raw/pipe")
    os.symlink("pipe", "data/raw/to-pipe")
    with hang_guard():
        r = run_step(cli, "data/raw/pipe")
        one_line_refusal(r, 3, "data/raw/pipe: is a FIFO")
        r = run_step(cli, "data/raw/to-*")
        one_line_refusal(r, 3, "data/raw/to-pipe: symlink target is a FIFO")
    assert not Path("ran").exists() and not links_in(project)


def test_socket_material_is_refused_by_name(project: Path, cli, unix_socket: str) -> None:
    with hang_guard():
        r = run_step(cli, "data/**")
    one_line_refusal(r, 3, f"{unix_socket}: is a socket")
    assert not links_in(project)


def test_device_is_never_read(tmp_path: Path) -> None:
    with hang_guard(), pytest.raises(ArtifactError, match="dev/zero: is not a regular file"):
        hash_file("/dev/zero", "dev/zero")
    with hang_guard(), pytest.raises(ArtifactError, match="zero: is not a regular file"):
        hash_paths("/dev", ["zero"])


def test_path_swapped_for_a_fifo_after_the_walk_does_not_block(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "weights.bin")  # what the walk saw as a file is a FIFO when opened
    with hang_guard(), pytest.raises(ArtifactError, match=r"weights\.bin: is not a regular file"):
        hash_paths(str(tmp_path), ["weights.bin"])


def test_special_files_outside_the_patterns_are_left_alone(project: Path, cli) -> None:
    os.mkfifo("data/pipe")
    r = run_step(cli, "data/raw/*")
    assert r.code == 0, r.err
    assert Path("ran").exists() and links_in(project)


# -- non-UTF-8 file names: refused by name in run and verify ---------------------------------------


def make_bad_name(root: Path, rel: bytes = BAD_NAME) -> None:
    fd = os.open(os.fsencode(root) + b"/" + rel, os.O_WRONLY | os.O_CREAT, 0o644)
    os.write(fd, b"1,2\n")
    os.close(fd)


def test_non_utf8_material_name_is_refused_by_name(project: Path, cli) -> None:
    make_bad_name(project)
    before = snapshot(project)
    r = run_step(cli, "data/raw")
    one_line_refusal(r, 3, "data/raw/bad\\xff.csv: file name is not valid UTF-8")
    assert not Path("ran").exists() and not links_in(project) and snapshot(project) == before


@pytest.mark.parametrize(
    ("name", "shown", "why"),
    [
        ("data/raw/a\\b.csv", "data/raw/a\\b.csv", "file name has a backslash"),
        ("data/raw/..\\..\\x.csv", "data/raw/..\\..\\x.csv", "file name has a backslash"),
        ("c:x.csv", "c:x.csv", "path starts like a Windows drive"),
    ],
)
def test_a_name_verification_would_refuse_is_refused_when_recorded(
    project: Path, cli, name: str, shown: str, why: str
) -> None:
    """A backslash or a drive-like start means another path on Windows and verification
    refuses it: recording it would write a link that can never verify. Found with any pattern
    (a directory's files are checked in one pass unless a name needs a closer look)."""
    Path(name).write_text("1,2\n")
    before = snapshot(project)
    pattern = "*.csv" if "/" not in name else "data/raw"
    r = run_step(cli, pattern)
    one_line_refusal(r, 3, f"{shown}: {why}")
    assert not Path("ran").exists() and not links_in(project) and snapshot(project) == before


def test_non_utf8_name_under_products_fails_verify_by_name(signed: Path, cli) -> None:
    make_bad_name(signed, b"models/extra\xff.bin")
    r = verify(cli)
    assert r.code == 1, r.out + r.err
    assert "models/extra\\xff.bin" in r.out and "not valid UTF-8" in r.out
    assert "Traceback" not in r.err
    r = verify(cli, "--json")
    assert r.code == 1 and "models/extra\\\\xff.bin" in r.out


def test_newline_in_a_name_stays_on_one_line(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "a\nb")
    with pytest.raises(ArtifactError) as err:
        hash_artifacts(tmp_path, ["*"])
    assert "\n" not in str(err.value) and "a\\nb: is a FIFO" in str(err.value)


# -- walk_all: every entry under the product directories -------------------------------------------


def test_walk_all_sees_every_entry_and_refuses_links_and_special_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base = tmp_path / "base"
    models = base / "models"
    for d in ("__pycache__", ".git/objects", ".venv/lib", ".hidden", "sub", "real-dir"):
        (models / d).mkdir(parents=True)
    for f in (
        "model.safetensors",
        "__pycache__/x.pyc",
        ".git/objects/ab",
        ".venv/lib/site.py",
        ".hidden/secret",
        ".dotfile",
        "sub/deep.bin",
    ):
        (models / f).write_bytes(f.encode())
    (tmp_path / "outside.bin").write_bytes(b"outside")
    os.symlink("model.safetensors", models / "link-in")
    os.symlink(tmp_path / "outside.bin", models / "link-out")
    os.symlink("real-dir", models / "link-dir")
    os.symlink("missing", models / "link-broken")
    os.mkfifo(models / "pipe")
    make_bad_name(base, b"models/bad\xff.bin")
    (models / "win\\dows.bin").write_bytes(b"w")
    monkeypatch.chdir(models)
    sock = socket.socket(socket.AF_UNIX)
    sock.bind("sock")
    try:
        with hang_guard():
            files, refused = walk_all(str(base), ["models"])
    finally:
        sock.close()
    assert files == sorted(
        [
            "models/.dotfile",
            "models/.git/objects/ab",
            "models/.hidden/secret",
            "models/.venv/lib/site.py",
            "models/__pycache__/x.pyc",
            "models/model.safetensors",
            "models/sub/deep.bin",
        ]
    )
    reasons = dict(refused)
    assert reasons == {
        "models/bad\\xff.bin": "file name is not valid UTF-8",
        "models/link-broken": "is a symlink; symlinks are not followed here",
        "models/link-dir": "is a symlink; symlinks are not followed here",
        "models/link-in": "is a symlink; symlinks are not followed here",
        "models/link-out": "is a symlink; symlinks are not followed here",
        "models/pipe": "is a FIFO, not a regular file",
        "models/win\\dows.bin": (
            "file name has a backslash (a path separator on Windows, refused by verification)"
        ),
        "models/sock": "is a socket, not a regular file",
    }


def test_walk_all_roots_files_missing_and_symlinked(tmp_path: Path) -> None:
    (tmp_path / "models").mkdir()
    (tmp_path / "models" / "w.bin").write_bytes(b"w")
    (tmp_path / "metrics.json").write_text("{}")
    os.symlink("models", tmp_path / "alias")
    inv = walk_all(str(tmp_path), ["models", "models/", "metrics.json", "absent", "alias"])
    assert inv.files == ["metrics.json", "models/w.bin"]
    assert inv.refused == [("alias", "is a symlink; symlinks are not followed here")]
    assert walk_all(str(tmp_path), ["."]).files == ["metrics.json", "models/w.bin"]
    with pytest.raises(ArtifactError, match="escapes"):
        walk_all(str(tmp_path), ["../etc"])


@settings(max_examples=500, deadline=None)
@given(
    st.lists(
        st.text(
            st.sampled_from(["a", ".", ":", "\\", " ", "é", "c", "-"]), min_size=1, max_size=4
        ).filter(lambda n: n not in (".", "..")),
        min_size=1,
        max_size=3,
    )
)
def test_walked_names_are_refused_exactly_where_verification_refuses_them(
    parts: list[str],
) -> None:
    """The walk checks only what a listed path can get wrong (a backslash, a drive-like start);
    for every path a walk can list that is the whole of verification's rule."""
    from provenance.hashing import is_safe_relative
    from provenance.hashing._walk import name_problem

    rel = "/".join(parts)
    assert (name_problem(rel) is None) == is_safe_relative(rel), rel
