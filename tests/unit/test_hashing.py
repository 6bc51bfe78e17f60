"""The hashing engine's digests equal hashlib's for every file, across random trees."""

from __future__ import annotations

import hashlib
import os
import random
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provenance.errors import ArtifactError, PathEscapeError
from provenance.hashing import Excludes, _engine, hash_artifacts, hash_paths

NAME = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc"), blacklist_characters="/\\\x00"),
    min_size=1,
    max_size=12,
).filter(lambda n: n not in (".", "..") and len(n.encode()) < 200)

TREE = st.dictionaries(
    # A path starting like a Windows drive ('c:') is refused by name (test_special_files.py).
    st.lists(NAME, min_size=1, max_size=3).map(tuple).filter(lambda parts: parts[0][1:2] != ":"),
    st.binary(max_size=3000),
    max_size=25,
)


def write_tree(base: Path, tree: dict[tuple[str, ...], bytes]) -> dict[str, bytes]:
    written: dict[str, bytes] = {}
    for parts, data in tree.items():
        path = base.joinpath(*parts)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            if path.exists():
                continue
            path.write_bytes(data)
        except (NotADirectoryError, FileExistsError, IsADirectoryError):
            continue  # a name is both a file and a folder in this draw
        written["/".join(parts)] = data
    return written


def expected(written: dict[str, bytes], excluded_dirs: set[str]) -> dict[str, str]:
    return {
        p: hashlib.sha256(d).hexdigest()
        for p, d in written.items()
        if not set(p.split("/")[:-1]) & excluded_dirs
    }


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    tree=TREE,
    exclude=st.sampled_from(["", "skip"]),
    links=st.lists(st.integers(0, 1000), max_size=3),
)
def test_digests_equal_hashlib_for_random_trees(tree, exclude: str, links: list[int]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        written = write_tree(base, tree)
        if exclude:
            (base / exclude).mkdir(exist_ok=True)
            (base / exclude / "hidden.bin").write_bytes(b"h")
        targets = sorted(written)
        for n, pick in enumerate(links if targets else []):
            # A symlink inside the base is recorded under its own name with its target's digest.
            target = targets[pick % len(targets)]
            name = f"symlink-{n}.lnk"
            if (base / name).exists():
                continue
            (base / name).symlink_to(target)
            written[name] = written[target]
        result = hash_artifacts(base, ["**"], [exclude + "/"] if exclude else [])
        assert result.digests == expected(written, {exclude} if exclude else set())


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 2**32), extra=st.integers(0, 300))
def test_worker_processes_agree_with_hashlib(seed: int, extra: int) -> None:
    """Enough files to take the multi-process path, empty ones included."""
    rnd = random.Random(seed)
    with tempfile.TemporaryDirectory() as tmp:
        rels = []
        for i in range(_engine.POOL_MIN_FILES + extra):
            rel = f"d{i % 7}/f{i}.bin"
            path = Path(tmp, rel)
            path.parent.mkdir(exist_ok=True)
            path.write_bytes(rnd.randbytes(rnd.choice([0, 1, rnd.randint(0, 5000)])))
            rels.append(rel)
        got = hash_paths(tmp, rels, workers=2)
        assert got == [hashlib.sha256(Path(tmp, r).read_bytes()).digest() for r in rels]


def test_large_files_take_the_threaded_path(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(_engine, "LARGE", 1000)
    monkeypatch.setattr(_engine, "POOL_MIN_FILES", 4)
    files = {f"f{i}": os.urandom(size) for i, size in enumerate([10, 5000, 0, 3 * 1024 * 1024, 7])}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    got = hash_paths(str(tmp_path), list(files), workers=2)
    assert got == [hashlib.sha256(d).digest() for d in files.values()]


def test_unicode_nested_empty_and_symlinks_inside_base(tmp_path: Path) -> None:
    (tmp_path / "données" / "ß" / "深い").mkdir(parents=True)
    (tmp_path / "données" / "ß" / "深い" / "空.txt").write_bytes(b"")
    (tmp_path / "données" / "w.bin").write_bytes(b"w" * 70000)
    (tmp_path / "link.bin").symlink_to("données/w.bin")
    (tmp_path / "dirlink").symlink_to("données")  # not descended into: no cycles, no duplicates
    got = hash_artifacts(tmp_path, ["**"]).digests
    assert got == {
        "données/ß/深い/空.txt": hashlib.sha256(b"").hexdigest(),
        "données/w.bin": hashlib.sha256(b"w" * 70000).hexdigest(),
        "link.bin": hashlib.sha256(b"w" * 70000).hexdigest(),
    }


@pytest.mark.parametrize(
    ("pattern", "matches"),
    [
        ("a/*.txt", ["a/x.txt"]),
        ("a/**", ["a/b/y.txt", "a/x.txt", "a/z.bin"]),
        ("**/*.txt", ["a/b/y.txt", "a/x.txt", "top.txt"]),
        ("a", ["a/b/y.txt", "a/x.txt", "a/z.bin"]),
        ("top.txt", ["top.txt"]),
        ("a/?.bin", ["a/z.bin"]),
        ("a/**/y.txt", ["a/b/y.txt"]),
    ],
)
def test_pattern_semantics(tmp_path: Path, pattern: str, matches: list[str]) -> None:
    for rel in ("a/x.txt", "a/b/y.txt", "a/z.bin", "top.txt"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    assert sorted(hash_artifacts(tmp_path, [pattern]).digests) == matches


def test_default_excludes(tmp_path: Path) -> None:
    for rel in (".git/HEAD", ".venv/bin/python", "pkg/__pycache__/m.pyc", "pkg/m.py"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(rel)
    assert list(hash_artifacts(tmp_path, ["**"], Excludes.DEFAULT).digests) == ["pkg/m.py"]


def test_unreadable_file_is_named(tmp_path: Path) -> None:
    if os.geteuid() == 0:
        # root reads anything: use a file that vanishes instead
        rels = ["gone.bin"]
        with pytest.raises(ArtifactError, match=r"gone\.bin.*cannot read"):
            hash_paths(str(tmp_path), rels)
        return
    p = tmp_path / "secret.bin"  # pragma: no cover - CI runs as root
    p.write_bytes(b"x")
    p.chmod(0)
    with pytest.raises(ArtifactError, match=r"secret\.bin"):
        hash_paths(str(tmp_path), ["secret.bin"])


def test_file_changed_while_hashed_is_an_error(tmp_path: Path, monkeypatch) -> None:
    path = tmp_path / "growing.bin"
    path.write_bytes(b"a" * 100)
    real_read = os.read

    def read_and_append(fd: int, n: int) -> bytes:
        data = real_read(fd, n)
        with open(path, "ab") as f:
            f.write(b"more")
        return data

    monkeypatch.setattr(_engine.os, "read", read_and_append)
    with pytest.raises(ArtifactError, match=r"growing\.bin.*changed while it was being hashed"):
        hash_paths(str(tmp_path), ["growing.bin"], workers=1)


def _batch(base: Path, rels: list[str]) -> list[tuple[int, bytes]]:
    """(status, digest) per file, as a worker process answers for one batch (run in-process)."""
    from provenance.hashing import _worker

    b = _worker.Batcher(os.fsencode(base), False, _engine.LARGE)
    try:
        rec = b.hash(0, [os.fsencode(r) for r in rels])
    finally:
        b.close()
    n, head = len(rels), _worker.TASK.size
    return [(rec[head + k], rec[head + n + 32 * k : head + n + 32 * k + 32]) for k in range(n)]


def test_worker_refuses_what_was_swapped_in_after_the_walk(tmp_path: Path) -> None:
    """The fast path reads no fstat: a FIFO, a device, a directory still never hash (or block).

    A name is opened without following a symlink; a symlink (the walk's, or one swapped in)
    is hashed only when it resolves to a regular file inside the base.
    """
    from provenance.hashing import _worker

    base = tmp_path / "base"
    base.mkdir()
    (base / "ok.bin").write_bytes(b"data")
    os.mkfifo(base / "fifo")
    (base / "dir").mkdir()
    (base / "to-ok").symlink_to("ok.bin")  # inside the base: the target's digest
    (base / "to-fifo").symlink_to("fifo")
    (tmp_path / "outside.txt").write_text("secret")
    swapped = {"null": "/dev/null", "zero": "/dev/zero", "out": str(tmp_path / "outside.txt")}
    for name, target in swapped.items():
        (base / name).symlink_to(target)
    got = _batch(base, ["ok.bin", "to-ok", "fifo", "dir", "to-fifo", "null", "zero", "out"])
    ok = (_worker.OK, hashlib.sha256(b"data").digest())
    assert got[:2] == [ok, ok]
    assert [s for s, _ in got[2:5]] == [_worker.SPECIAL] * 3
    assert [s for s, _ in got[5:]] == [_worker.ESCAPED] * 3


def test_pooled_hashing_names_a_symlink_swapped_to_outside_the_base(tmp_path: Path) -> None:
    """Between the walk and the hash a file becomes a link out of the base: refused by name."""
    from provenance.hashing import _pool

    (tmp_path / "outside.txt").write_text("not yours to vouch for")
    base = tmp_path / "base"
    rels = [f"d/f{i}.bin" for i in range(_engine.POOL_MIN_FILES)]
    for rel in rels:
        (base / rel).parent.mkdir(parents=True, exist_ok=True)
        (base / rel).write_bytes(rel.encode())
    (base / rels[7]).unlink()
    (base / rels[7]).symlink_to(tmp_path / "outside.txt")
    with pytest.raises(PathEscapeError, match=r"d/f7\.bin.*outside the base"):
        hash_paths(str(base), rels, workers=2)
    assert _pool.idle_pids()  # a refused file is an answer, not a failed worker


@pytest.mark.parametrize("change", [b"more", b""])
def test_worker_small_file_that_grew_or_shrank_is_changed(
    tmp_path: Path, monkeypatch, change: bytes
) -> None:
    """Between the size (lseek) and the one read: another length is never hashed."""
    from provenance.hashing import _worker

    path = tmp_path / "f.bin"
    path.write_bytes(b"a" * 100)
    real_pread = os.pread

    def pread_after_a_write(fd: int, n: int, offset: int) -> bytes:
        if change:
            with open(path, "ab") as f:
                f.write(change)
        else:
            os.truncate(path, 40)
        return real_pread(fd, n, offset)

    monkeypatch.setattr(_worker.os, "pread", pread_after_a_write)
    assert _batch(tmp_path, ["f.bin"])[0][0] == _worker.CHANGED


def test_worker_read_error_names_the_file_and_goes_on(tmp_path: Path, monkeypatch) -> None:
    """An I/O error on one file is that file's answer; the batch's other files still hash."""
    from provenance.hashing import _worker

    for name in ("a.bin", "bad.bin", "c.bin"):
        (tmp_path / name).write_bytes(name.encode())
    real_pread = os.pread
    bad = os.stat(tmp_path / "bad.bin").st_ino

    def pread(fd: int, n: int, offset: int) -> bytes:
        if os.fstat(fd).st_ino == bad:
            raise OSError(5, "Input/output error")
        return real_pread(fd, n, offset)

    monkeypatch.setattr(_worker.os, "pread", pread)
    got = _batch(tmp_path, ["a.bin", "bad.bin", "c.bin"])
    assert got[0] == (_worker.OK, hashlib.sha256(b"a.bin").digest())
    assert got[1][0] == _worker.ERR and got[1][1][0] == 5
    assert got[2] == (_worker.OK, hashlib.sha256(b"c.bin").digest())


def test_symlink_escape_and_pattern_escape(tmp_path: Path) -> None:
    outside = tmp_path / "outside.txt"
    outside.write_text("x")
    base = tmp_path / "base"
    base.mkdir()
    (base / "ok.txt").write_text("ok")
    (base / "evil").symlink_to(outside)
    with pytest.raises(PathEscapeError, match="evil"):
        hash_artifacts(base, ["**"])
    with pytest.raises(PathEscapeError, match="escapes"):
        hash_artifacts(base, ["../outside.txt"])
    shutil.rmtree(base)


def test_large_file_without_a_buffer_is_streamed(tmp_path: Path, monkeypatch) -> None:
    """hash_file() on its own (as `slsa verify` calls it) must not read a large file at once."""
    monkeypatch.setattr(_engine, "LARGE", 4096)
    data = os.urandom(3 * _engine.CHUNK + 17)
    (tmp_path / "big.bin").write_bytes(data)
    reads: list[int] = []
    real_read = os.read
    monkeypatch.setattr(_engine.os, "read", lambda fd, n: reads.append(n) or real_read(fd, n))
    assert _engine.hash_file(str(tmp_path / "big.bin"), "big.bin") == hashlib.sha256(data).digest()
    assert reads == []  # streamed with readinto() into a CHUNK buffer, not os.read of the whole


def test_manifest_digest_is_injective_for_names_with_newlines() -> None:
    """A `sha256sum`-style digest would give these two file sets the same value."""
    from provenance.hashing import Manifest

    a, b = "a" * 64, "b" * 64
    one = Manifest({"x": a, f"y\n{b}  z": a})
    two = Manifest({"x": a, "y": b, "z": a})
    assert one.digest() != two.digest()
    assert Manifest({"x": a}).digest() == Manifest({"x": a}).digest()


def test_manifest_diff_names_missing_extra_and_changed() -> None:
    from provenance.hashing import Manifest

    a, b = "a" * 64, "b" * 64
    diff = Manifest({"kept": a, "gone": a, "changed": a}).diff({"kept": a, "changed": b, "new": a})
    assert [(c.kind, c.path) for c in diff] == [
        ("changed", "changed"),
        ("missing", "gone"),
        ("extra", "new"),
    ]
    assert "hash mismatch for 'changed': expected " + a in diff.summary()
