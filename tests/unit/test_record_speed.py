"""The fast recording paths write exactly what the plain ones wrote, and fail the same way."""

from __future__ import annotations

import hashlib
import threading
from importlib.metadata import distributions
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from provenance._fs import canonical_json
from provenance.errors import ArtifactError
from provenance.hashing import (
    ArtifactSet,
    Background,
    Cancelled,
    _engine,
    hash_artifacts,
    hash_paths,
)
from provenance.links import link_payload, write_link
from provenance.record import _environment
from provenance.signing import dsse, generate, load_signer

NAMES = ["a", "a-b", "a.b", "a/b", "b/c", "é/ü", 'q"uote', "tab\tname", "☃", "日本/語", "z" * 200]


def packed(paths: list[str]) -> ArtifactSet:
    return ArtifactSet.packed(paths, b"".join(hashlib.sha256(p.encode()).digest() for p in paths))


def test_artifact_json_equals_canonical_json_of_the_dict() -> None:
    artifacts = packed(sorted(NAMES))
    assert artifacts.to_json() == canonical_json(artifacts.as_in_toto())
    assert artifacts.digests == {p: hashlib.sha256(p.encode()).hexdigest() for p in NAMES}
    assert ArtifactSet().to_json() == b"{}"


def test_artifact_json_in_many_chunks(monkeypatch) -> None:
    from provenance.hashing import _artifacts

    monkeypatch.setattr(_artifacts, "_JSON_STEP", 3)
    artifacts = packed(sorted(f"d{i % 5}/f{i}" for i in range(50)))
    assert artifacts.to_json() == canonical_json(artifacts.as_in_toto())


@settings(max_examples=300, deadline=None)
@given(
    st.sets(
        st.lists(
            st.sampled_from(["a", "/", " ", "~", '"', "\\", "\x7f", "\x1f", "\x00", "é", "☃", "."]),
            max_size=4,
        ).map("".join),
        max_size=12,
    ),
    st.integers(1, 5),
)
def test_artifact_json_with_and_without_escapes_equals_canonical_json(
    names: set[str], step: int
) -> None:
    """Chunks of paths that need no escape take the interleaving path, the others json's
    encoder: every mix of them gives exactly `canonical_json`."""
    from provenance.hashing import _artifacts

    with pytest.MonkeyPatch.context() as m:
        m.setattr(_artifacts, "_JSON_STEP", step)
        artifacts = packed(sorted(names))
        assert artifacts.to_json() == canonical_json(artifacts.as_in_toto())


@settings(max_examples=300, deadline=None)
@given(
    st.sets(
        st.lists(
            st.sampled_from(["a", "/", " ", "~", '"', "\\", "\x7f", "\x1f", "é", "☃", "."]),
            max_size=4,
        ).map("".join),
        max_size=30,
    ),
    st.lists(st.integers(0, 30)),
    st.integers(1, 5),
)
def test_json_rendered_while_hashing_equals_canonical_json(
    names: set[str], frontiers: list[int], step: int
) -> None:
    """The JSON a `Rendering` writes piece by piece, as the pool's frontier moves, is the
    set's canonical JSON; the link payload built around it in place is the whole link's."""
    from provenance.hashing import _artifacts

    paths = sorted(names)
    digests = bytearray(b"".join(hashlib.sha256(p.encode()).digest() for p in paths))
    with pytest.MonkeyPatch.context() as m:
        m.setattr(_artifacts, "_JSON_STEP", step)
        m.setattr(_artifacts, "_RENDER_MIN", step)
        rendering = _artifacts.Rendering(paths, digests)
        for n in sorted(min(f, len(paths)) for f in frontiers):
            rendering.upto(n)
        artifacts = ArtifactSet.packed(paths, digests, rendering.json())
    expected = canonical_json(artifacts.as_in_toto())
    assert artifacts.to_json() == expected
    environment = {"pipeline_run_id": "r"}
    whole = {
        "_type": "link",
        "name": "train",
        "command": ["python"],
        "materials": artifacts.as_in_toto(),
        "products": {"p": {"sha256": "0" * 64}},
        "byproducts": {},
        "environment": environment,
    }
    fresh = ArtifactSet.packed(paths, digests, bytearray(expected))
    payload = link_payload("train", ["python"], fresh, {"p": {"sha256": "0" * 64}}, {}, environment)
    assert payload == canonical_json(whole)
    assert fresh.take_json() is None  # handed over once: the payload owns the buffer now
    assert fresh.to_json() == expected  # ... and the set renders its JSON again when asked


def test_json_rendered_early_is_dropped_when_artifacts_are_added() -> None:
    paths = ["a", "b"]
    digests = b"".join(hashlib.sha256(p.encode()).digest() for p in paths)
    artifacts = ArtifactSet.packed(paths, digests, bytearray(b'{"stale":1}'))
    artifacts.add({"s3://bucket/key": "0" * 64})
    assert artifacts.take_json() is None
    assert artifacts.to_json() == canonical_json(artifacts.as_in_toto())


def test_packed_set_refuses_a_digest_count_that_does_not_match() -> None:
    with pytest.raises(ValueError, match="32-byte digest per path"):
        ArtifactSet.packed(["a", "b"], b"\0" * 32)


def test_link_payload_from_encoded_artifacts_is_byte_identical() -> None:
    artifacts = packed(sorted(NAMES))
    environment = {"pipeline_run_id": "r", "ratio": 1.5, "none": None, "list": [1, "é"]}
    whole = {
        "_type": "link",
        "name": "train",
        "command": ["python", "é.py"],
        "materials": artifacts.as_in_toto(),
        "products": {},
        "byproducts": {"return-value": 0},
        "environment": environment,
    }
    spliced = link_payload(
        "train", ["python", "é.py"], artifacts.to_json(), b"{}", {"return-value": 0}, environment
    )
    assert spliced == canonical_json(whole)
    assert link_payload(
        "train", ["python", "é.py"], artifacts.as_in_toto(), {}, {"return-value": 0}, environment
    ) == canonical_json(whole)


@pytest.mark.parametrize("size", [0, 1, 2, 3, 4, 100, 3 * 1024 + 1])
def test_streamed_envelope_equals_the_whole_one(tmp_path: Path, size: int) -> None:
    generate("k", str(tmp_path))  # ed25519: deterministic signatures, so bytes can be compared
    signer = load_signer(str(tmp_path / "k"))
    payload = bytes(range(256)) * (size // 256) + bytes(size % 256)
    whole = dsse.dumps(dsse.sign(payload, signer))
    for data in (payload, bytearray(payload)):  # a copy of the PAE, or the header put in place
        assert b"".join(dsse.signed_chunks(data, signer, chunk=3 * 5)) == whole
        assert data == payload
    written = write_link(payload, signer, "step", str(tmp_path / "links"))
    assert Path(written).read_bytes() == whole


def test_in_place_signing_leaves_the_payload_as_it_was(tmp_path: Path) -> None:
    generate("k", str(tmp_path))
    signer = load_signer(str(tmp_path / "k"))
    payload = bytearray(b'{"_type":"link"}' * 1000)
    original = bytes(payload)
    pieces = dsse.signed_chunks(payload, signer, chunk=3 * 5)
    next(pieces), next(pieces)  # signing on its thread, the PAE header in front of the payload
    pieces.close()  # the consumer stops (a failed write): the payload is as it was
    assert payload == original
    assert b"".join(dsse.signed_chunks(payload, signer)) == dsse.dumps(dsse.sign(original, signer))
    assert payload == original


def test_a_signer_not_in_memory_signs_first_on_the_callers_thread(tmp_path: Path) -> None:
    """A KMS/HSM/Sigstore signer may prompt or wait: it is never called from another thread."""
    generate("k", str(tmp_path))
    key = load_signer(str(tmp_path / "k"))
    threads: list[str] = []

    class Remote:  # not a CryptoSigner: stands for a signer behind a URI
        public_key = key.public_key

        def sign(self, payload: bytes):
            threads.append(threading.current_thread().name)
            return key.sign(payload)

    payload = bytearray(b'{"_type":"link"}' * 1000)
    original = bytes(payload)
    got = b"".join(dsse.signed_chunks(payload, Remote(), chunk=3 * 5))
    assert got == dsse.dumps(dsse.sign(original, key))
    assert threads == [threading.current_thread().name] and payload == original


def test_a_signer_that_fails_leaves_no_link(tmp_path: Path) -> None:
    """The signature is made while the payload is written: a failure still writes nothing."""
    generate("k", str(tmp_path))
    signer = load_signer(str(tmp_path / "k"))

    class Refused(Exception):
        pass

    def sign(payload: bytes) -> None:
        raise Refused("the KMS said no")

    signer.sign = sign  # type: ignore[method-assign]
    payload = bytearray(b"x" * 10_000)
    with pytest.raises(Refused):
        write_link(payload, signer, "step", str(tmp_path / "links"))
    assert list((tmp_path / "links").iterdir()) == []  # no link, no temporary file
    assert payload == b"x" * 10_000


def test_a_write_that_fails_midway_leaves_the_payload_as_it_was_and_no_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The signed pieces are closed when the write fails, before its error is raised."""
    from provenance import _fs
    from provenance.errors import OutputError

    generate("k", str(tmp_path))
    signer = load_signer(str(tmp_path / "k"))
    payload = bytearray(b'{"_type":"link"}' * 500_000)  # 8 MB: several base64 pieces
    original = bytes(payload)
    real_fdopen = _fs.os.fdopen

    class DiskFull:
        def __init__(self, f) -> None:
            self.f, self.writes = f, 0

        def __enter__(self):
            return self

        def __exit__(self, *exc: object) -> None:
            self.f.close()

        def write(self, data: bytes) -> int:
            self.writes += 1
            if self.writes == 3:
                raise OSError(28, "No space left on device")
            return self.f.write(data)

    monkeypatch.setattr(_fs.os, "fdopen", lambda fd, mode: DiskFull(real_fdopen(fd, mode)))
    links = tmp_path / "links"
    try:
        write_link(payload, signer, "step", str(links))
    except OutputError:
        assert payload == original  # already restored when the error is raised
    else:
        raise AssertionError("the write did not fail")
    assert list(links.iterdir()) == []


def test_installed_packages_equal_what_the_email_parser_reads() -> None:
    slow = {f"{(d.metadata['Name'] or '').lower()}=={d.version}" for d in distributions()}
    _environment.installed_packages.cache_clear()
    assert _environment.installed_packages() == tuple(sorted(slow))


class FakeDist:
    """A distribution whose METADATA text is given (what importlib hands over)."""

    def __init__(self, text: str) -> None:
        self.text = text

    def read_text(self, name: str) -> str | None:
        return self.text if name == "METADATA" else None

    @property
    def metadata(self):  # the slow path: the real email parser over the same text
        import email

        return email.message_from_string(self.text)

    @property
    def version(self) -> str:
        return self.metadata["Version"]


@pytest.mark.parametrize(
    "text",
    [
        "Metadata-Version: 2.1\nName: Foo-Bar\nVersion: 1.0\n\nbody Name: x\n",
        "Metadata-Version: 2.1\r\nName: Foo\r\nVersion: 2.0 \r\n\r\n",
        "Name: folded\n  more\nVersion: 1\n",
        "Summary: x\n continued\nName: Late\nVersion: 3\n",
        "not a header\nName: Hidden\nVersion: 4\n",
        "Name:\tTabbed\nVersion:5\nName: Second\n",
        "Version: 6\n",
    ],
)
def test_unusual_metadata_headers_read_as_the_email_parser_reads_them(text: str) -> None:
    dist = FakeDist(text)
    expected = f"{(dist.metadata['Name'] or '').lower()}=={dist.version}"
    assert _environment._name_version(dist) == expected


def test_few_heavy_files_hash_in_workers_with_the_same_digests(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(_engine, "HEAVY", 1000)
    monkeypatch.setattr(_engine, "LARGE", 600)
    files = {f"f{i}.bin": bytes([i]) * size for i, size in enumerate([0, 10, 700, 5000, 3])}
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    assert _engine._heavy(str(tmp_path), list(files))
    got = hash_paths(str(tmp_path), list(files), workers=2, fork_heavy=True)
    assert got == [hashlib.sha256(d).digest() for d in files.values()]


def test_heavy_path_names_a_fifo_and_a_vanished_file(tmp_path: Path, monkeypatch) -> None:
    import os

    monkeypatch.setattr(_engine, "HEAVY", 10)
    (tmp_path / "big.bin").write_bytes(b"x" * 100)
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(ArtifactError, match=r"pipe.*not a regular file"):
        hash_paths(str(tmp_path), ["big.bin", "pipe"], workers=2, fork_heavy=True)


def test_background_job_returns_its_result_and_raises_its_error(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a")
    job = Background(lambda progress: hash_artifacts(tmp_path, ["**"], progress=progress))
    assert job.result().digests == {"a.txt": hashlib.sha256(b"a").hexdigest()}
    failing = Background(lambda progress: hash_artifacts(tmp_path, ["../x"], progress=progress))
    with pytest.raises(Exception, match="x"):
        failing.result()


def test_cancelled_background_job_stops_at_its_next_progress_report() -> None:
    reports: list[int] = []

    def endless(progress) -> None:
        while True:  # only cancellation ends it: a broken cancel() hangs this test
            progress(1)
            reports.append(1)

    running = Background(endless)
    running.cancel()
    assert not running._thread.is_alive()
    with pytest.raises(Cancelled):
        running.result()


def test_bad_key_cancels_the_materials_hashing_and_leaves_nothing(tmp_path: Path) -> None:
    from provenance.errors import KeyLoadError
    from provenance.record import StepSpec
    from provenance.record._recorder import prepare

    for i in range(_engine.POOL_MIN_FILES + 10):  # enough files for the worker processes
        (tmp_path / "data" / f"d{i % 9}").mkdir(parents=True, exist_ok=True)
        (tmp_path / "data" / f"d{i % 9}" / f"f{i}").write_bytes(b"x")
    (tmp_path / "bad.pem").write_bytes(b"-----BEGIN PRIVATE KEY-----\ngarbage\n")
    (tmp_path / "bad.pem").chmod(0o600)
    spec = StepSpec(
        "s", ["data/**"], key=str(tmp_path / "bad.pem"), base_dir=str(tmp_path), quiet=True
    )
    with pytest.raises(KeyLoadError, match=r"bad\.pem"):
        prepare(spec)
    assert not any(t.name == "provenance-hashing" for t in threading.enumerate())
    leftovers = [p for p in tmp_path.rglob("*") if "data" not in p.parts and p.name != "bad.pem"]
    assert all(p.is_dir() for p in leftovers)  # no link, no RUN_ID, no temp file
