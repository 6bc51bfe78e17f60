"""Red team: "a PASS / a yielded record is true" for dataset manifests and the verifying loader.

Each test is one attack modelled on a published bypass class of a comparable tool (in-toto and
model-transparency path/TOCTOU issues, WebDataset tar parsing, Python tarfile CVEs, Unicode
and percent-encoding ambiguity, DataLoader worker splitting, replayed or misplaced links). It
asserts the refusal: the exception or exit code, the named member, and that nothing of the
attacked shard was yielded (or written).
"""

from __future__ import annotations

import base64
import importlib
import io
import json
import os
import shutil
import sys
import tarfile
import unicodedata
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from provenance.datasets import (
    Dataset,
    VerifiedShards,
    _loader,
    make_manifest,
    recorded_manifest,
    tar_samples,
    whole_shard,
)
from provenance.datasets._format import MAX_LINE, header, member_line, trailer
from provenance.errors import ArtifactError, InputError, UsageError, VerificationError
from tests.conftest import Result

DIGEST = "a" * 64


def tar_bytes(members: list[tuple[str, bytes]]) -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, body in members:
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
    return out.getvalue()


def dataset(root: Path, files: dict[str, bytes]) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    for rel, body in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(body)
    make_manifest(str(root), root.parent / "m.manifest")
    return root.parent / "m.manifest"


def read_all(loader: VerifiedShards[Any]) -> tuple[list[Any], BaseException | None]:
    got: list[Any] = []
    try:
        for record in loader:
            got.append(record)
    except (VerificationError, InputError, UsageError) as exc:
        return got, exc
    return got, None


# -- the manifest: refused at its first bad line, before any shard is read ------------------------

GOOD = header("local") + f"a\t1\t{DIGEST}\n".encode() + f"b\t2\t{DIGEST}\n".encode() + trailer(2, 3)


def one_member(name: bytes) -> bytes:
    return header("local") + name + f"\t1\t{DIGEST}\n".encode() + trailer(1, 1)


@pytest.mark.parametrize(
    ("body", "line", "why"),
    [
        # A path escaping the root in each spelling the escaping could give it.
        (one_member(b"a/../b"), 2, "not a safe relative path"),
        (one_member(b"a//b"), 2, "not a safe relative path"),  # an S3 key with '//'
        (one_member(b"b/"), 2, "not a safe relative path"),  # an S3 'directory'
        (one_member(b"./b"), 2, "not a safe relative path"),
        (one_member(b"b%00x"), 2, "not a safe relative path"),  # NUL
        (one_member(b"b\\..\\x"), 2, "not a safe relative path"),
        (one_member(b"a%2Fb"), 2, "canonical"),  # '/' escaped: a second spelling of a/b
        (one_member(b"%62"), 2, "canonical"),  # 'b' escaped
        (one_member(b"b%0a"), 2, "canonical"),  # lower-case hex
        (one_member(b"b\r"), 2, "canonical"),  # a raw CR in the name
        (GOOD.replace(b"\n", b"\r\n"), 1, "unknown manifest kind"),  # CRLF line ends
        (b"\xef\xbb\xbf" + GOOD, 1, "not a dataset manifest"),  # a byte-order mark
        # Trailer forgery: counts that hide or add a member, a second trailer, a tail.
        (GOOD.replace(b"#end\t2\t3", b"#end\t2\t4"), 4, "trailer says 2 members / 4 bytes"),
        (GOOD.replace(b"#end\t2\t3", b"#end\t02\t3"), 4, "malformed trailer"),
        (GOOD + trailer(2, 3), 4, "data after"),
        (GOOD + b"\x00", 4, "data after"),
        # One line a byte longer than the writer ever writes (its newline counted).
        (GOOD.replace(b"b\t2", b"b" * (MAX_LINE - 67) + b"\t2"), 3, f"longer than {MAX_LINE}"),
        # A huge line: read in bounded pieces and refused at its line.
        (GOOD.replace(b"b\t2", b"b" * (8 << 20) + b"\t2"), 3, "longer than"),
    ],
)
def test_malformed_manifest_is_refused_at_its_line_and_no_shard_is_read(
    tmp_path: Path, cli: Callable[..., Result], body: bytes, line: int, why: str
) -> None:
    root = tmp_path / "d"
    root.mkdir()
    (root / "a").write_bytes(b"x")
    m = tmp_path / "bad.manifest"
    m.write_bytes(body)
    loader = VerifiedShards(m, str(root))
    got, exc = read_all(loader)
    assert got == [] and isinstance(exc, InputError), exc
    where = f"{m}:{line}" if line > 1 else str(m)
    assert why in str(exc) and where in str(exc), str(exc)
    assert loader.stats.shards_read == 0
    before = sorted(os.listdir(tmp_path))
    r = cli("dataset", "verify", str(m), str(root))
    assert r.code == 3 and why in r.err and len(r.err.strip().splitlines()) == 1, r.err
    assert sorted(os.listdir(tmp_path)) == before


def bytes_read_by_this_process() -> int:
    text = Path("/proc/self/io").read_text()
    return int(next(x for x in text.splitlines() if x.startswith("rchar:")).split()[1])


def test_huge_manifest_is_refused_at_its_first_bad_line_without_reading_the_rest(
    tmp_path: Path,
) -> None:
    m = tmp_path / "m.manifest"
    with m.open("wb") as f:
        f.write(header("local") + b"no tabs here\n")
        f.truncate(256 << 20)  # 256 MiB (sparse) after it: the spool would hold all of it
    before = bytes_read_by_this_process()
    got, exc = read_all(VerifiedShards(m, str(tmp_path)))
    assert got == [] and isinstance(exc, InputError) and f"{m}:2" in str(exc)
    assert bytes_read_by_this_process() - before < 8 << 20


def test_the_longest_line_the_writer_writes_is_the_longest_the_reader_reads(
    tmp_path: Path,
) -> None:
    # Reader and writer agree on the limit: one name has one manifest, or none, never a
    # manifest only a hand could write.
    name = "n" * (MAX_LINE - 68)  # 64 hex, two tabs, one size digit, newline: MAX_LINE in all
    line = member_line(name, 1, DIGEST)
    assert len(line) == MAX_LINE
    with pytest.raises(ArtifactError, match="too long"):
        member_line(name + "n", 1, DIGEST)
    m = tmp_path / "m"
    m.write_bytes(header("local") + line + trailer(1, 1))
    got, exc = read_all(VerifiedShards(m, str(tmp_path)))
    assert got == [] and isinstance(exc, VerificationError)  # parsed, then the shard looked for


def test_manifest_symlinked_to_a_device_fifo_or_directory_is_refused_without_blocking(
    tmp_path: Path, cli: Callable[..., Result]
) -> None:
    root = tmp_path / "d"
    root.mkdir()
    os.mkfifo(tmp_path / "fifo")
    for target in ("/dev/zero", str(tmp_path / "fifo"), str(root)):
        link = tmp_path / "m.manifest"
        link.unlink(missing_ok=True)
        link.symlink_to(target)
        got, exc = read_all(VerifiedShards(link, str(root)))
        assert got == [] and isinstance(exc, InputError) and "regular file" in str(exc)
        assert cli("dataset", "verify", str(link), str(root)).code == 3


# -- one set of members, one manifest: names compared as bytes, never normalised ------------------


def test_unicode_and_case_twins_are_different_members(
    tmp_path: Path, cli: Callable[..., Result]
) -> None:
    nfc = unicodedata.normalize("NFC", "café.tar")
    nfd = unicodedata.normalize("NFD", "café.tar")
    m = dataset(tmp_path / "d", {nfc: b"one", "Shard.tar": b"two"})
    # The NFD twin and a case twin take the recorded names' places.
    (tmp_path / "d" / nfc).unlink()
    (tmp_path / "d" / nfd).write_bytes(b"one")
    (tmp_path / "d" / "Shard.tar").rename(tmp_path / "d" / "shard.tar")
    r = cli("dataset", "verify", str(m), str(tmp_path / "d"))
    assert r.code == 1 and "2 missing, 2 extra" in r.out + r.err, r.out + r.err
    got, exc = read_all(VerifiedShards(m, str(tmp_path / "d")))
    assert isinstance(exc, VerificationError) and "is missing" in str(exc)
    # Nor does the caller's spelling reach a recorded member.
    for spelling in (nfd, "shard.tar", "./Shard.tar", "x/../Shard.tar"):
        loader = VerifiedShards(m, str(tmp_path / "d"), shards=[spelling])
        got, exc = read_all(loader)
        assert got == [] and isinstance(exc, VerificationError) and "is not listed" in str(exc)
        assert loader.stats.shards_read == 0


def test_percent_in_a_name_round_trips_and_has_one_spelling(tmp_path: Path) -> None:
    m = dataset(tmp_path / "d", {"%41": b"percent", "A": b"letter"})
    text = m.read_bytes()
    assert b"%2541\t7\t" in text and b"\nA\t6\t" in text
    got = dict(VerifiedShards(m, str(tmp_path / "d"), decode=whole_shard))
    assert got == {"%41": b"percent", "A": b"letter"}


# -- shards=[...]: each named shard listed, and read once ---------------------------------------


def test_a_shard_named_twice_is_refused_before_anything_is_read(tmp_path: Path) -> None:
    m = dataset(tmp_path / "d", {"s0": b"zero", "s1": b"one"})
    with pytest.raises(UsageError, match="shard 's1' is named twice") as caught:
        VerifiedShards(m, str(tmp_path / "d"), shards=["s1", "s0", "s1"])
    assert caught.value.exit_code == 2


# -- TOCTOU: what is decoded is what was hashed -------------------------------------------------


@pytest.mark.parametrize("spool", [1 << 30, 4])  # in memory, and through a temporary file
def test_shard_swapped_after_it_was_hashed_does_not_reach_the_decoder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, spool: int
) -> None:
    monkeypatch.setattr(_loader, "SPOOL_BYTES", spool)
    m = dataset(tmp_path / "d", {"s0": b"recorded bytes"})
    shard = tmp_path / "d" / "s0"

    def swap_then_decode(name: str, data: Any) -> Iterator[bytes]:
        shard.write_bytes(b"poisoned bytes")  # after the digest, before the decode
        yield data.read()

    assert list(VerifiedShards(m, str(tmp_path / "d"), decode=swap_then_decode)) == [
        b"recorded bytes"
    ]


def test_shard_symlinked_elsewhere_is_held_to_the_recorded_bytes(tmp_path: Path) -> None:
    m = dataset(tmp_path / "d", {"s0": b"recorded"})
    (tmp_path / "outside").write_bytes(b"attacker")
    (tmp_path / "d" / "s0").unlink()
    (tmp_path / "d" / "s0").symlink_to(tmp_path / "outside")
    got, exc = read_all(VerifiedShards(m, str(tmp_path / "d")))
    assert got == [] and isinstance(exc, VerificationError) and "'s0' does not match" in str(exc)


# -- WebDataset-style tar shards ------------------------------------------------------------------


def gnu_sparse_member(name: str, stored: bytes, realsize: int) -> bytes:
    """A GNU sparse tar member: `stored` bytes in the shard that read back as `realsize`."""
    info = tarfile.TarInfo(name)
    info.size = len(stored)
    info.type = tarfile.GNUTYPE_SPARSE
    block = bytearray(info.tobuf(format=tarfile.GNU_FORMAT))
    block[386:398] = tarfile.itn(0, 12, tarfile.GNU_FORMAT)  # one data region at offset 0
    block[398:410] = tarfile.itn(len(stored), 12, tarfile.GNU_FORMAT)
    block[483:495] = tarfile.itn(realsize, 12, tarfile.GNU_FORMAT)
    block[148:156] = b" " * 8
    block[148:155] = b"%06o\0" % sum(block)
    data = stored + b"\0" * (-len(stored) % 512)
    return bytes(block) + data


def negative_size_member(name: str) -> bytes:
    """A member whose size field is negative (base-256): the CVE-2025-8194 class."""
    info = tarfile.TarInfo(name)
    info.size = 0
    block = bytearray(info.tobuf(format=tarfile.GNU_FORMAT))
    block[124:136] = b"\xff" + (256**11 - 1024).to_bytes(11, "big")
    block[148:156] = b" " * 8
    block[148:155] = b"%06o\0" % sum(block)
    return bytes(block)


def raw_member(name: str, body: bytes) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = len(body)
    return info.tobuf(format=tarfile.GNU_FORMAT) + body + b"\0" * (-len(body) % 512)


def first_sample() -> bytes:
    return raw_member("0000.txt", b"fine") + raw_member("0000.cls", b"0")  # no end blocks


@pytest.mark.parametrize(
    ("members", "why"),
    [
        # A member that would overwrite the loader's own fields: forge the shard a sample
        # came from, or its key.
        ([("0001.txt", b"x"), ("0001.__shard__", b"shard-000.tar")], "'__shard__' field"),
        ([("0001.__key__", b"0000"), ("0001.txt", b"x")], "'__key__' field"),
        # A second file of the same name in one sample (WebDataset: "duplicate file name").
        ([("0001.txt", b"first"), ("0001.txt", b"second")], "'txt' field"),
        # A sample whose files are not together (the second half would be a second sample).
        ([("0001.txt", b"a"), ("0002.txt", b"b"), ("0001.cls", b"1")], "not contiguous"),
    ],
)
def test_tar_member_that_forges_or_splits_a_sample_is_refused(
    tmp_path: Path, members: list[tuple[str, bytes]], why: str
) -> None:
    m = dataset(tmp_path / "d", {"shard-001.tar": tar_bytes(members)})
    got, exc = read_all(VerifiedShards(m, str(tmp_path / "d"), decode=tar_samples))
    assert isinstance(exc, InputError) and "shard-001.tar" in str(exc) and why in str(exc)
    assert all(s["__shard__"] == "shard-001.tar" and "__key__" in s for s in got)
    assert all(isinstance(s["__key__"], str) for s in got)


def test_sparse_member_that_expands_when_read_is_refused(tmp_path: Path) -> None:
    # 1.5 KB in the shard; tarfile would hand back 64 MiB (any size: a memory bomb).
    shard = first_sample() + gnu_sparse_member("0001.bin", b"s" * 10, 64 << 20) + b"\0" * 1024
    m = dataset(tmp_path / "d", {"shard-000.tar": shard})
    got, exc = read_all(VerifiedShards(m, str(tmp_path / "d"), decode=tar_samples))
    assert isinstance(exc, InputError) and "shard-000.tar" in str(exc)
    assert "'0001.bin' is sparse" in str(exc)
    assert all("bin" not in s for s in got)


def test_negative_member_size_is_refused_not_looped_on(tmp_path: Path) -> None:
    shard = first_sample() + negative_size_member("0001.bin") + first_sample()
    m = dataset(tmp_path / "d", {"shard-000.tar": shard + b"\0" * 1024})
    got, exc = read_all(VerifiedShards(m, str(tmp_path / "d"), decode=tar_samples))
    assert isinstance(exc, InputError) and "not a readable tar shard" in str(exc)
    assert [s["__key__"] for s in got] == ["0000"]


def test_traversal_names_and_links_in_a_tar_write_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, body in (("../../escape.txt", b"up"), ("/tmp/abs.txt", b"abs")):
            info = tarfile.TarInfo(name)
            info.size = len(body)
            tar.addfile(info, io.BytesIO(body))
        for kind, name in ((tarfile.SYMTYPE, "0002.txt"), (tarfile.LNKTYPE, "0003.txt")):
            info = tarfile.TarInfo(name)
            info.type, info.linkname = kind, "/etc/passwd"
            tar.addfile(info)
        long_name = "d" * 200 + "/0004.txt"  # a pax long name
        info = tarfile.TarInfo(long_name)
        info.size = 4
        tar.addfile(info, io.BytesIO(b"long"))
    m = dataset(tmp_path / "d", {"s.tar": out.getvalue()})
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    samples = list(VerifiedShards(m, str(tmp_path / "d"), decode=tar_samples))
    assert [(s["__key__"], s.get("txt")) for s in samples] == [
        ("../../escape", b"up"),
        ("/tmp/abs", b"abs"),
        ("d" * 200 + "/0004", b"long"),
    ]  # links skipped, names only keys: nothing extracted
    assert list(work.iterdir()) == [] and not (tmp_path / "escape.txt").exists()


def test_sample_split_across_shards_stays_two_samples_each_naming_its_shard(
    tmp_path: Path,
) -> None:
    m = dataset(
        tmp_path / "d",
        {
            "a.tar": tar_bytes([("0001.jpg", b"image")]),
            "b.tar": tar_bytes([("0001.cls", b"label")]),
        },
    )
    got = list(VerifiedShards(m, str(tmp_path / "d"), decode=tar_samples))
    assert got == [
        {"__key__": "0001", "__shard__": "a.tar", "jpg": b"image"},
        {"__key__": "0001", "__shard__": "b.tar", "cls": b"label"},
    ]


# -- PyTorch DataLoader workers: each shard once, all held to one manifest ----------------------


def shard_set(tmp_path: Path, n: int = 7) -> Path:
    return dataset(tmp_path / "d", {f"s{i}": f"shard {i}".encode() for i in range(n)})


@pytest.mark.parametrize("workers", [0, 2, 3])
def test_each_shard_is_read_once_whatever_the_worker_count(tmp_path: Path, workers: int) -> None:
    torch_data = importlib.import_module("torch.utils.data")
    from provenance.datasets import torch_dataset

    m = shard_set(tmp_path)
    source = VerifiedShards(m, str(tmp_path / "d"))
    got = list(torch_data.DataLoader(torch_dataset(source), batch_size=None, num_workers=workers))
    assert sorted(name for name, _ in got) == [f"s{i}" for i in range(7)]
    # An empty subset is empty in every worker (it was every shard with workers).
    subset = VerifiedShards(m, str(tmp_path / "d"), shards=[])
    loader = torch_data.DataLoader(torch_dataset(subset), batch_size=None, num_workers=workers)
    assert list(loader) == []


def test_workers_refuse_a_manifest_changed_after_the_dataset_was_made(tmp_path: Path) -> None:
    torch_data = importlib.import_module("torch.utils.data")
    from provenance.datasets import torch_dataset

    m = shard_set(tmp_path)
    dataset_ = torch_dataset(VerifiedShards(m, str(tmp_path / "d")))
    # Swapped before the workers start: a shard poisoned, a fresh manifest written for it.
    (tmp_path / "d" / "s3").write_bytes(b"poison!")
    make_manifest(str(tmp_path / "d"), m)
    got: list[Any] = []
    with pytest.raises(Exception, match="manifest sha256 is") as caught:
        for record in torch_data.DataLoader(dataset_, batch_size=None, num_workers=2):
            got.append(record)
    assert got == [] and "no shard was read" in str(caught.value)


# -- recorded_manifest: the link must be the one asked for ----------------------------------------


def run_step(cli: Callable[..., Result], name: str, *extra: str, code: str = "pass") -> None:
    r = cli("run", name, *extra, "--key", "keys/data-eng", "--", sys.executable, "-c", code)
    assert r.code == 0, r.err


@pytest.fixture
def proj(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., Result]) -> Path:
    root = tmp_path / "proj"
    (root / "shards").mkdir(parents=True)
    for i in range(3):
        (root / "shards" / f"s{i}").write_bytes(f"good {i}".encode())
    monkeypatch.chdir(root)
    assert cli("keygen", "data-eng", "--dir", "keys").code == 0
    assert cli("keygen", "other", "--dir", "keys").code == 0
    return root


def link_of(step: str) -> Path:
    (link,) = Path(".provenance/links").glob(f"{step}.*.link")
    return link


MANIFEST = Dataset("shards").manifest_path


def test_another_steps_link_in_this_steps_place_is_refused(
    proj: Path, cli: Callable[..., Result]
) -> None:
    # 'ingest' (same key) recorded the dataset when s1 was poisoned; 'prepare' after the fix.
    (proj / "shards" / "s1").write_bytes(b"poison")
    run_step(cli, "ingest", "--dataset", "shards")
    old_manifest = Path(MANIFEST).read_bytes()
    (proj / "shards" / "s1").write_bytes(b"good 1")
    run_step(cli, "prepare", "--dataset", "shards")
    prepare, ingest = link_of("prepare"), link_of("ingest")
    # The attacker restores the poisoned shard and its manifest, and puts ingest's link
    # (validly signed by the same key) in prepare's place.
    (proj / "shards" / "s1").write_bytes(b"poison")
    Path(MANIFEST).write_bytes(old_manifest)
    shutil.copy(ingest, prepare)
    with pytest.raises(
        VerificationError,
        match=r"named for step 'prepare' signed by \w{8}, but records step 'ingest'",
    ):
        recorded_manifest(str(prepare), "keys/data-eng.pub", MANIFEST)
    # Under another key's name (in-toto: the file's keyid must be the signer's).
    other_key = Path(".provenance/links/ingest.0badc0de.link")
    shutil.copy(ingest, other_key)
    with pytest.raises(VerificationError, match="signed by 0badc0de, but records step"):
        recorded_manifest(str(other_key), "keys/data-eng.pub", MANIFEST)
    renamed = Path(".provenance/links/prepare.link")
    shutil.copy(ingest, renamed)
    with pytest.raises(VerificationError, match=r"not named <step>\.<keyid\[:8\]>\.link"):
        recorded_manifest(str(renamed), "keys/data-eng.pub", MANIFEST)


def test_a_step_that_updates_its_dataset_is_held_to_what_it_made(
    proj: Path, cli: Callable[..., Result]
) -> None:
    # One step reads the dataset and rewrites it: the link records the manifest as a
    # material (before) and as a product (after), at the same path.
    fix = "open('shards/s1', 'wb').write(b'fixed 1')"
    (proj / "shards" / "s1").write_bytes(b"poison")
    run_step(cli, "clean", "--dataset", "shards", "--dataset-product", "shards", code=fix)
    doc = json.loads(base64.b64decode(json.loads(link_of("clean").read_text())["payload"]))
    material, product = doc["materials"][MANIFEST], doc["products"][MANIFEST]
    assert material != product
    assert (
        recorded_manifest(str(link_of("clean")), "keys/data-eng.pub", MANIFEST)
        == (product["sha256"])
    )
    # The poisoned state (the step's input) restored with a manifest for it: refused.
    (proj / "shards" / "s1").write_bytes(b"poison")
    make_manifest("shards", MANIFEST)
    expected = recorded_manifest(str(link_of("clean")), "keys/data-eng.pub", MANIFEST)
    loader = VerifiedShards(MANIFEST, "shards", expect_sha256=expected)
    got, exc = read_all(loader)
    assert got == [] and isinstance(exc, VerificationError)
    assert "no shard was read" in str(exc) and loader.stats.shards_read == 0


def resign(link: Path, payload: bytes, payload_type: str, key: str = "keys/data-eng") -> None:
    from provenance.signing import dsse
    from provenance.signing.keys import load_signer

    envelope = dsse.sign(payload, load_signer(key), payload_type=payload_type)
    link.write_bytes(dsse.dumps(envelope))


def test_link_signed_as_something_other_than_in_toto_is_refused(
    proj: Path, cli: Callable[..., Result]
) -> None:
    run_step(cli, "prepare", "--dataset", "shards")
    link = link_of("prepare")
    payload = base64.b64decode(json.loads(link.read_text())["payload"])
    resign(link, payload, "application/json")
    with pytest.raises(InputError, match="is not in-toto"):
        recorded_manifest(str(link), "keys/data-eng.pub", MANIFEST)


def test_signature_of_another_key_under_the_trusted_keyid_is_refused(
    proj: Path, cli: Callable[..., Result]
) -> None:
    from provenance.signing.keys import load_public_key

    run_step(cli, "prepare", "--dataset", "shards")
    link = link_of("prepare")
    payload = base64.b64decode(json.loads(link.read_text())["payload"])
    resign(link, payload, "application/vnd.in-toto+json", key="keys/other")
    envelope = json.loads(link.read_text())
    envelope["signatures"][0]["keyid"] = load_public_key("keys/data-eng.pub").keyid
    link.write_text(json.dumps(envelope))
    with pytest.raises(VerificationError, match=r"not signed by keys/data-eng\.pub"):
        recorded_manifest(str(link), "keys/data-eng.pub", MANIFEST)


def test_environment_claims_do_not_move_the_anchor(proj: Path, cli: Callable[..., Result]) -> None:
    # A (validly signed) link whose environment names another manifest digest than its
    # products: the loader is held to the artifact, the field in-toto verifies.
    run_step(cli, "prepare", "--dataset-product", "shards")
    link = link_of("prepare")
    doc = json.loads(base64.b64decode(json.loads(link.read_text())["payload"]))
    recorded = doc["products"][MANIFEST]["sha256"]
    (proj / "shards" / "s2").write_bytes(b"poison")
    forged, _ = make_manifest("shards", "forged.manifest")
    doc["environment"]["datasets"]["products"][MANIFEST]["sha256"] = forged.sha256
    doc["environment"]["datasets"]["read"] = {forged.sha256: {"members": 3}}
    resign(link, json.dumps(doc, sort_keys=True).encode(), "application/vnd.in-toto+json")
    assert recorded_manifest(str(link), "keys/data-eng.pub", MANIFEST) == recorded
    shutil.copy("forged.manifest", MANIFEST)
    got, exc = read_all(VerifiedShards(MANIFEST, "shards", expect_sha256=recorded))
    assert got == [] and isinstance(exc, VerificationError) and "no shard was read" in str(exc)


# -- provenance verify: the link's description of a dataset cannot switch its check off ----------

PREPARE_ONLY = """\
expires: 30d
functionaries:
  data-eng: keys/data-eng.pub
steps:
  - name: prepare
    functionaries: [data-eng]
    products:
      - create: ".provenance/datasets/shards-*.manifest"
"""


def test_dataset_product_described_as_another_kind_is_still_checked(
    proj: Path, cli: Callable[..., Result]
) -> None:
    from provenance._fs import canonical_json

    run_step(cli, "prepare", "--dataset-product", "shards")
    assert cli("keygen", "owner", "--dir", "keys").code == 0
    Path("layout.yaml").write_text(PREPARE_ONLY)
    r = cli("layout", "sign", "layout.yaml", "--key", "keys/owner", "-o", "root.layout")
    assert r.code == 0, r.err
    verify = ("verify", "--layout", "root.layout", "--layout-key", "keys/owner.pub")
    assert cli(*verify).code == 0
    # The step's link (validly signed) describes its local dataset as an s3 one: neither the
    # local nor the object re-hash would take it, and a tampered member would pass.
    link = link_of("prepare")
    doc = json.loads(base64.b64decode(json.loads(link.read_text())["payload"]))
    doc["environment"]["datasets"]["products"][MANIFEST]["kind"] = "s3"
    resign(link, canonical_json(doc), "application/vnd.in-toto+json")
    (proj / "shards" / "s0").write_bytes(b"tampered")
    r = cli(*verify)
    assert r.code == 1, r.out + r.err
    assert f"dataset product {MANIFEST} of step 'prepare'" in r.out
    assert "the manifest lists a local one" in r.out


def test_a_symlinked_directory_inside_the_root_is_refused_not_skipped(
    tmp_path: Path, cli: Callable[..., Result]
) -> None:
    """`alias -> sub` would be a second path to members that no manifest line names: `dataset
    verify` must not PASS while it exists, and no manifest is written over a tree holding one."""
    root = tmp_path / "d"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "x.bin").write_bytes(b"x")
    manifest = tmp_path / "m.manifest"
    make_manifest(str(root), str(manifest))
    before = manifest.read_bytes()
    (root / "alias").symlink_to(root / "sub", target_is_directory=True)
    r = cli("dataset", "verify", str(manifest), str(root))
    assert r.code == 3 and "alias" in r.err and "symlink to a directory" in r.err, r.err
    assert "Traceback" not in r.err and len(r.err.strip().splitlines()) == 1
    again = tmp_path / "again.manifest"
    r = cli("dataset", "manifest", str(root), "-o", str(again))
    assert r.code == 3 and "alias" in r.err, r.err
    assert not again.exists() and manifest.read_bytes() == before
