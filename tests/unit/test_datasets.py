"""Dataset manifests of local directories: format, canonical bytes, atomic writes, verify.

The CLI is run in-process (`cli` fixture). Attack tests assert the refusal, the exit code and
that nothing was written; verify tests assert which members are named and the counts.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable
from pathlib import Path

import pytest

from provenance.datasets import _sort, make_manifest, members, scan, verify_dataset
from provenance.datasets._format import escape, header, member_line, trailer
from provenance.errors import ArtifactError, InputError, UsageError
from tests.conftest import Result


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def make_tree(root: Path, files: dict[str, bytes]) -> Path:
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


FILES = {
    "a.txt": b"alpha",
    "a/x.bin": b"\x00\x01",
    "b#%c": b"odd name",
    "t\tab": b"tab",
    "new\nline": b"newline",
    "ünï/cödé": b"utf-8",
    ".hidden/h": b"hidden",
}


@pytest.fixture
def data(tmp_path: Path) -> Path:
    return make_tree(tmp_path / "data", FILES)


# -- format ---------------------------------------------------------------------------------


def test_manifest_is_the_documented_canonical_text(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "d.manifest"
    info, _ = make_manifest(str(data), out)
    expected_lines = sorted(
        escape(rel).encode() + f"\t{len(body)}\t{sha(body)}\n".encode()
        for rel, body in FILES.items()
    )
    text = out.read_bytes()
    assert text == header("local") + b"".join(expected_lines) + trailer(
        len(FILES), sum(map(len, FILES.values()))
    )
    assert info.sha256 == sha(text)
    assert (info.members, info.bytes, info.kind) == (7, sum(map(len, FILES.values())), "local")
    # A name holding a tab or newline cannot inject a field or a line.
    assert b"t%09ab\t3\t" in text and b"new%0Aline\t7\t" in text and b"b%23%25c\t" in text
    assert {m.path for m in members(str(out))} == set(FILES)


def test_same_members_give_the_same_bytes_whatever_the_order_written(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Many members through an external merge of several runs equal one in-memory sort.
    files = {f"d{i % 7}/f{(i * 7919) % 3001:05d}": str(i).encode() for i in range(3000)}
    data = make_tree(tmp_path / "many", files)
    one, _ = make_manifest(str(data), tmp_path / "one.manifest")
    monkeypatch.setattr(_sort, "RUN_BYTES", 4096)  # ~25 lines per run: 100+ runs merged
    spilled = tmp_path / "spilled"
    spilled.mkdir()
    runs: list[str] = []
    real_spill = _sort.LineSorter._spill

    def spill(self: _sort.LineSorter) -> None:
        real_spill(self)
        runs.append(self._runs[-1])

    monkeypatch.setattr(_sort.LineSorter, "_spill", spill)
    two, _ = make_manifest(str(data), spilled / "two.manifest")
    assert one.sha256 == two.sha256 and one.members == 3000
    assert (tmp_path / "one.manifest").read_bytes() == (spilled / "two.manifest").read_bytes()
    assert len(runs) >= 50 and not any(os.path.exists(r) for r in runs)  # merged, removed
    assert sorted(os.listdir(spilled)) == ["two.manifest"]


def test_member_line_round_trips_object_columns() -> None:
    line = member_line("k/a b", 3, "0" * 64, '"etag-1"', None)
    assert line == b"k/a b\t3\t" + b"0" * 64 + b'\t"etag-1"\t-\n'


# -- writing: atomic, never over an input, never partial -----------------------------------------


def test_unreadable_member_fails_by_name_and_leaves_no_manifest(
    data: Path, tmp_path: Path, cli: Callable[..., Result]
) -> None:
    if os.geteuid() == 0:
        # root reads any mode: make the member unreadable another way (a dangling symlink).
        (data / "zz-broken").symlink_to(data / "no-such-file")
    else:
        (data / "a.txt").chmod(0)
    out = tmp_path / "d.manifest"
    r = cli("dataset", "manifest", str(data), "-o", str(out))
    assert r.code == 3, r.err
    assert ("zz-broken" in r.err or "a.txt" in r.err) and len(r.err.strip().splitlines()) == 1
    assert not out.exists()
    assert [p for p in os.listdir(tmp_path) if p.startswith(".tmp")] == []


def test_failed_run_keeps_the_previous_manifest(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "d.manifest"
    make_manifest(str(data), out)
    before = out.read_bytes()
    (data / "zz-broken").symlink_to(data / "no-such-file")
    with pytest.raises(ArtifactError, match="zz-broken"):
        make_manifest(str(data), out)
    assert out.read_bytes() == before


def test_output_inside_the_dataset_is_refused(data: Path, cli: Callable[..., Result]) -> None:
    r = cli("dataset", "manifest", str(data), "-o", str(data / "d.manifest"))
    assert r.code == 2 and "inside the dataset" in r.err
    assert not (data / "d.manifest").exists()


def test_output_over_a_key_is_refused(
    data: Path, tmp_path: Path, cli: Callable[..., Result], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli("keygen", "k", "--dir", "keys").code == 0
    before = (tmp_path / "keys" / "k").read_bytes()
    r = cli("dataset", "manifest", str(data), "-o", "keys/k")
    assert r.code == 2, r.err
    assert (tmp_path / "keys" / "k").read_bytes() == before


def test_usage_errors_exit_2(data: Path, tmp_path: Path, cli: Callable[..., Result]) -> None:
    assert cli("dataset", "manifest", str(data)).code == 2  # no -o
    r = cli("dataset", "manifest", str(data), "-o", str(tmp_path / "m"), "--engine", "spark")
    assert r.code == 2
    assert not (tmp_path / "m").exists()


def test_source_that_is_not_a_directory_exits_3(tmp_path: Path, cli: Callable[..., Result]) -> None:
    (tmp_path / "f").write_text("x")
    for src in (tmp_path / "f", tmp_path / "absent"):
        r = cli("dataset", "manifest", str(src), "-o", str(tmp_path / "m"))
        assert r.code == 3 and str(src) in r.err
    assert not (tmp_path / "m").exists()


def test_json_output(data: Path, tmp_path: Path, cli: Callable[..., Result]) -> None:
    import json

    r = cli("dataset", "manifest", str(data), "-o", str(tmp_path / "m"), "--json")
    doc = json.loads(r.out)
    assert r.code == 0 and doc["members"] == 7 and doc["engine"] == "local"
    assert doc["sha256"] == sha((tmp_path / "m").read_bytes())


# -- verify ---------------------------------------------------------------------------------------


def test_verify_passes_on_the_same_members(
    data: Path, tmp_path: Path, cli: Callable[..., Result]
) -> None:
    make_manifest(str(data), tmp_path / "m")
    r = cli("dataset", "verify", str(tmp_path / "m"), str(data))
    assert r.code == 0 and r.out.startswith("PASS: 7 members")


def test_verify_names_missing_extra_and_changed(
    data: Path, tmp_path: Path, cli: Callable[..., Result]
) -> None:
    make_manifest(str(data), tmp_path / "m")
    (data / "a.txt").unlink()
    (data / "a" / "x.bin").write_bytes(b"tampered")
    (data / "planted").write_bytes(b"p")
    r = cli("dataset", "verify", str(tmp_path / "m"), str(data))
    assert r.code == 1
    lines = r.out.splitlines()
    assert "1 missing, 1 extra, 1 changed (of 7 recorded)" in lines[0]
    assert "missing: 'a.txt'" in r.out and "extra file: 'planted'" in r.out
    assert f"hash mismatch for 'a/x.bin': expected {sha(FILES['a/x.bin'])}" in r.out


def test_verify_output_is_bounded_with_millions_in_mind(tmp_path: Path) -> None:
    data = make_tree(tmp_path / "d", {f"f{i:04d}": b"x" for i in range(300)})
    make_manifest(str(data), tmp_path / "m")
    for i in range(100):
        (data / f"f{i:04d}").write_bytes(b"y")
    for i in range(100, 160):
        (data / f"f{i:04d}").unlink()
    check = verify_dataset(str(tmp_path / "m"), str(data))
    assert check.counts == {"missing": 60, "extra": 0, "changed": 100}
    assert len(check.lines()) == 20 + 20 + 1
    assert check.lines()[-1].startswith("... and 120 more")


def test_verify_refuses_a_manifest_of_the_other_kind(tmp_path: Path, data: Path) -> None:
    m = tmp_path / "m"
    m.write_bytes(header("s3") + trailer(0, 0))
    with pytest.raises(UsageError, match="manifest of an s3 dataset") as caught:
        verify_dataset(str(m), str(data))
    assert caught.value.exit_code == 2


# -- malformed manifests: exit 3, named, before anything is hashed -------------------------------

DIGEST = "a" * 64
GOOD = header("local") + f"a\t1\t{DIGEST}\n".encode() + f"b\t2\t{DIGEST}\n".encode() + trailer(2, 3)


@pytest.mark.parametrize(
    ("body", "why"),
    [
        (b"hello\n", "not a dataset manifest"),
        (b"#ml-provenance-dataset/1\tmd5\tlocal\n" + trailer(0, 0), "expected sha256"),
        (header("gcs") + trailer(0, 0), "unknown manifest kind"),
        (GOOD.replace(b"#end\t2\t3\n", b""), "trailer line is missing"),
        (GOOD[:-1], "truncated"),
        (GOOD.replace(b"#end\t2\t3", b"#end\t3\t3"), "trailer says 3 members"),
        (GOOD + b"x\n", "data after"),
        (
            GOOD.replace(b"b\t2", b"a\t2").replace(DIGEST.encode() + b"\n#", b"b" * 64 + b"\n#"),
            "listed twice",
        ),
        (
            header("local") + f"b\t1\t{DIGEST}\na\t2\t{DIGEST}\n".encode() + trailer(2, 3),
            "out of order",
        ),
        (GOOD.replace(b"a\t1", b"../a\t1"), "not a safe relative path"),
        (GOOD.replace(b"a\t1", b"/etc/passwd\t1"), "not a safe relative path"),
        (GOOD.replace(b"a\t1", b"%2e%2e/a\t1"), "canonical"),
        (GOOD.replace(b"a\t1", b"%61\t1"), "canonical"),
        (GOOD.replace(b"a\t1", b"a\t01"), "invalid size"),
        (GOOD.replace(b"a\t1", b"a\t-1"), "invalid size"),
        (
            GOOD.replace(b"a\t1\t" + DIGEST.encode(), b"a\t1\t" + DIGEST.upper().encode()),
            "invalid sha256",
        ),
        (GOOD.replace(b"a\t1", b"a\t1\textra"), "expected 3 tab-separated fields"),
        (GOOD.replace(b"a\t1", b"\xff\xfe\t1"), "not valid UTF-8"),
        (GOOD.replace(b"a\t1", b"a" * 17000 + b"\t1"), "longer than"),
    ],
)
def test_malformed_manifest_exits_3_naming_the_line(
    tmp_path: Path, data: Path, cli: Callable[..., Result], body: bytes, why: str
) -> None:
    m = tmp_path / "bad.manifest"
    m.write_bytes(body)
    r = cli("dataset", "verify", str(m), str(data))
    assert r.code == 3, (r.code, r.err)
    assert why in r.err and str(m) in r.err and len(r.err.strip().splitlines()) == 1, r.err


def test_fifo_manifest_is_refused_without_blocking(tmp_path: Path, data: Path) -> None:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(InputError, match="regular file"):
        scan(str(fifo))


def test_manifest_swapped_for_another_is_refused_by_digest(data: Path, tmp_path: Path) -> None:
    info, _ = make_manifest(str(data), tmp_path / "m")
    (data / "a.txt").write_bytes(b"other")
    make_manifest(str(data), tmp_path / "m")
    with pytest.raises(InputError, match=f"expected {info.sha256}"):
        verify_dataset(str(tmp_path / "m"), str(data), expect_sha256=info.sha256)


def test_a_store_etag_that_cannot_be_recorded_is_refused_by_name() -> None:
    with pytest.raises(ArtifactError, match="k/obj"):
        member_line("k/obj", 1, "0" * 64, "etag with space", None)
    assert member_line("k/obj", 1, "0" * 64, "", None).endswith(b"\t-\t-\n")
