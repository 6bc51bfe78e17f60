"""Verification while reading: shards read once, records yielded only from verified shards.

Attacks: a tampered, missing, unlisted, reordered or grown shard, a manifest swapped after
the step signed it, a link signed by another key. Each raises naming the shard (or manifest)
before any of that shard's records reach the caller.
"""

from __future__ import annotations

import importlib
import io
import shutil
import sys
import tarfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from provenance.datasets import (
    Dataset,
    VerifiedShards,
    make_manifest,
    recorded_manifest,
    tar_samples,
    text_lines,
)
from provenance.errors import VerificationError
from tests.conftest import Result

SHARDS = 5
SAMPLES = 4


def tar_shard(path: Path, shard: int) -> None:
    with tarfile.open(path, "w") as tar:
        for i in range(SAMPLES):
            key = f"{shard:02d}{i:02d}"
            for ext, body in (("txt", f"sample {key}".encode()), ("cls", str(i % 2).encode())):
                info = tarfile.TarInfo(f"{key}.{ext}")
                info.size = len(body)
                tar.addfile(info, io.BytesIO(body))


@pytest.fixture
def shards(tmp_path: Path) -> Path:
    root = tmp_path / "shards"
    root.mkdir()
    for s in range(SHARDS):
        tar_shard(root / f"shard-{s:03d}.tar", s)
    make_manifest(str(root), tmp_path / "shards.manifest")
    return root


def read_all(loader: VerifiedShards[Any]) -> tuple[list[Any], BaseException | None]:
    got: list[Any] = []
    try:
        for record in loader:
            got.append(record)
    except VerificationError as exc:
        return got, exc
    return got, None


def loader(tmp_path: Path, root: Path, **kw: Any) -> VerifiedShards[dict[str, Any]]:
    return VerifiedShards(tmp_path / "shards.manifest", str(root), decode=tar_samples, **kw)


def test_every_shard_is_read_once_and_its_samples_yielded(shards: Path, tmp_path: Path) -> None:
    data = loader(tmp_path, shards)
    samples = list(data)
    assert len(samples) == SHARDS * SAMPLES
    assert samples[0] == {
        "__key__": "0000",
        "__shard__": "shard-000.tar",
        "txt": b"sample 0000",
        "cls": b"0",
    }
    assert data.stats.shards_read == SHARDS
    assert data.stats.bytes_read == sum(p.stat().st_size for p in shards.iterdir())
    assert data.stats.read == sorted(p.name for p in shards.iterdir())


def test_tampered_shard_raises_before_any_of_its_records(shards: Path, tmp_path: Path) -> None:
    tar_shard(shards / "shard-002.tar", 9)  # same size, other content
    got, exc = read_all(loader(tmp_path, shards))
    assert exc is not None and "shard 'shard-002.tar' does not match" in str(exc)
    assert {s["__shard__"] for s in got} == {"shard-000.tar", "shard-001.tar"}


def test_grown_shard_is_refused(shards: Path, tmp_path: Path) -> None:
    with (shards / "shard-000.tar").open("ab") as f:
        f.write(b"\0" * 512)
    got, exc = read_all(loader(tmp_path, shards))
    assert got == [] and exc is not None and "shard-000.tar" in str(exc) and "+ bytes" in str(exc)


def test_missing_shard_is_named(shards: Path, tmp_path: Path) -> None:
    (shards / "shard-003.tar").unlink()
    got, exc = read_all(loader(tmp_path, shards))
    assert exc is not None and "shard 'shard-003.tar' is missing" in str(exc)
    assert len(got) == 3 * SAMPLES


def test_unlisted_shard_raises_before_anything_is_read(shards: Path, tmp_path: Path) -> None:
    shutil.copy(shards / "shard-000.tar", shards / "shard-999.tar")
    data = loader(tmp_path, shards, shards=["shard-000.tar", "shard-999.tar"])
    got, exc = read_all(data)
    assert got == [] and exc is not None
    assert "shard 'shard-999.tar' is not listed" in str(exc)
    assert data.stats.shards_read == 0


def test_reordered_shards_are_refused_by_content(shards: Path, tmp_path: Path) -> None:
    a, b = shards / "shard-001.tar", shards / "shard-003.tar"
    body_a, body_b = a.read_bytes(), b.read_bytes()
    a.write_bytes(body_b)
    b.write_bytes(body_a)
    got, exc = read_all(loader(tmp_path, shards))
    assert exc is not None and "shard 'shard-001.tar'" in str(exc)
    assert {s["__shard__"] for s in got} == {"shard-000.tar"}


def test_caller_order_and_subset_are_kept(shards: Path, tmp_path: Path) -> None:
    data = loader(tmp_path, shards, shards=["shard-004.tar", "shard-001.tar"])
    assert [s["__key__"] for s in data][::SAMPLES] == ["0400", "0100"]
    assert data.stats.shards_read == 2  # and it says so: the others were never checked


def test_plain_lines_decoder(tmp_path: Path) -> None:
    root = tmp_path / "text"
    root.mkdir()
    (root / "a.txt").write_bytes(b"one\ntwo\n")
    make_manifest(str(root), tmp_path / "t.manifest")
    assert list(VerifiedShards(tmp_path / "t.manifest", str(root), decode=text_lines)) == [
        b"one\n",
        b"two\n",
    ]


# -- against the signed link ---------------------------------------------------------------


@pytest.fixture
def recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., Result]
) -> tuple[Path, str, str]:
    root = tmp_path / "proj"
    (root / "shards").mkdir(parents=True)
    for s in range(SHARDS):
        tar_shard(root / "shards" / f"shard-{s:03d}.tar", s)
    monkeypatch.chdir(root)
    for name in ("data-eng", "other"):
        assert cli("keygen", name, "--dir", "keys").code == 0
    r = cli(
        "run",
        "prepare",
        "--dataset",
        "shards",
        "--key",
        "keys/data-eng",
        "--",
        sys.executable,
        "-c",
        "pass",
    )
    assert r.code == 0, r.err
    (link,) = (root / ".provenance" / "links").glob("prepare.*.link")
    return root, str(link), Dataset("shards").manifest_path


def test_manifest_swapped_after_signing_is_refused_before_reading(
    recorded: tuple[Path, str, str],
) -> None:
    root, link, manifest = recorded
    expected = recorded_manifest(link, "keys/data-eng.pub", manifest)
    # The attacker swaps a shard and writes a fresh manifest that matches it.
    tar_shard(root / "shards" / "shard-002.tar", 7)
    make_manifest("shards", manifest)
    data = VerifiedShards(manifest, "shards", decode=tar_samples, expect_sha256=expected)
    got, exc = read_all(data)
    assert got == [] and exc is not None
    assert f"the recorded one is {expected}" in str(exc) and data.stats.shards_read == 0


def test_shard_swapped_after_signing_is_refused(recorded: tuple[Path, str, str]) -> None:
    root, link, manifest = recorded
    expected = recorded_manifest(link, "keys/data-eng.pub", manifest)
    tar_shard(root / "shards" / "shard-004.tar", 8)
    got, exc = read_all(
        VerifiedShards(manifest, "shards", decode=tar_samples, expect_sha256=expected)
    )
    assert exc is not None and "shard 'shard-004.tar' does not match" in str(exc)
    assert len(got) == 4 * SAMPLES


def test_link_signed_by_another_key_is_refused(recorded: tuple[Path, str, str]) -> None:
    _root, link, manifest = recorded
    with pytest.raises(VerificationError, match=r"not signed by keys/other\.pub"):
        recorded_manifest(link, "keys/other.pub", manifest)
    with pytest.raises(VerificationError, match="did not record"):
        recorded_manifest(link, "keys/data-eng.pub", ".provenance/datasets/other.manifest")


# -- PyTorch -----------------------------------------------------------------------------------


@pytest.mark.parametrize("workers", [0, 2])
def test_torch_dataloader_reads_each_shard_once(shards: Path, tmp_path: Path, workers: int) -> None:
    torch_data = importlib.import_module("torch.utils.data")
    from provenance.datasets import torch_dataset

    dataset = torch_dataset(loader(tmp_path, shards))
    got = list(torch_data.DataLoader(dataset, batch_size=None, num_workers=workers))
    assert sorted(s["__key__"] for s in got) == sorted(
        f"{s:02d}{i:02d}" for s in range(SHARDS) for i in range(SAMPLES)
    )


def test_torch_dataloader_raises_on_a_tampered_shard(shards: Path, tmp_path: Path) -> None:
    torch_data = importlib.import_module("torch.utils.data")
    from provenance.datasets import torch_dataset

    tar_shard(shards / "shard-001.tar", 6)
    dataset = torch_dataset(loader(tmp_path, shards))
    got: list[Any] = []
    with pytest.raises(Exception, match=r"shard 'shard-001\.tar' does not match"):
        for sample in torch_data.DataLoader(dataset, batch_size=None, num_workers=2):
            got.append(sample)
    assert all(s["__shard__"] != "shard-001.tar" for s in got)


# -- the training step records what the loader read ----------------------------------------------

TRAIN = """\
import sys
from provenance.datasets import VerifiedShards, tar_samples
manifest = sys.argv[1]
n = sum(1 for _ in VerifiedShards(manifest, "shards", decode=tar_samples))
open("model.bin", "w").write(str(n))
"""


def test_training_step_records_the_manifest_it_read_without_hashing_first(
    recorded: tuple[Path, str, str], cli: Callable[..., Result]
) -> None:
    root, link, manifest = recorded
    (root / "train.py").write_text(TRAIN)
    r = cli(
        "run",
        "train",
        "--dataset-read",
        "shards",
        "-p",
        "model.bin",
        "--key",
        "keys/data-eng",
        "--",
        sys.executable,
        "train.py",
        manifest,
    )
    assert r.code == 0, r.err
    import base64
    import json

    (train,) = (root / ".provenance" / "links").glob("train.*.link")
    doc = json.loads(base64.b64decode(json.loads(train.read_text())["payload"]))
    sha = recorded_manifest(link, "keys/data-eng.pub", manifest)
    assert doc["materials"] == {manifest: {"sha256": sha}}
    datasets = doc["environment"]["datasets"]
    assert datasets["materials"][manifest]["engine"] == "verified while reading"
    total = sum(p.stat().st_size for p in (root / "shards").iterdir())
    assert datasets["read"] == {
        sha: {
            "members": SHARDS,
            "shards_read": SHARDS,
            "bytes_read": total,
            "loaders": 1,
            "completed": True,
        }
    }
    assert (root / "model.bin").read_text() == str(SHARDS * SAMPLES)


def test_training_step_with_a_tampered_shard_writes_no_link(
    recorded: tuple[Path, str, str], cli: Callable[..., Result]
) -> None:
    root, _link, manifest = recorded
    (root / "train.py").write_text(TRAIN)
    tar_shard(root / "shards" / "shard-003.tar", 5)
    r = cli(
        "run",
        "train",
        "--dataset-read",
        "shards",
        "-p",
        "model.bin",
        "--key",
        "keys/data-eng",
        "--",
        sys.executable,
        "train.py",
        manifest,
    )
    assert r.code == 1  # the command failed on the shard: no link
    assert not list((root / ".provenance" / "links").glob("train.*.link"))
    assert not (root / "model.bin").exists()


def test_decorated_step_records_the_reads_of_its_loader(recorded: tuple[Path, str, str]) -> None:
    import base64
    import json
    import subprocess

    root, _link, manifest = recorded
    (root / "train.py").write_text(
        "import provenance\n"
        "from provenance.datasets import Dataset, VerifiedShards, tar_samples\n"
        f"@provenance.step('train', materials=[Dataset('shards', streamed=True)],"
        " products=['model.bin'], key='keys/data-eng')\n"
        "def train():\n"
        f"    it = iter(VerifiedShards({manifest!r}, 'shards', decode=tar_samples, shards=['shard-000.tar', 'shard-001.tar']))\n"
        "    open('model.bin', 'w').write(str(sum(1 for _ in it)))\n"
        "train()\n"
    )
    subprocess.run([sys.executable, "train.py"], cwd=root, check=True, capture_output=True)
    (train,) = (root / ".provenance" / "links").glob("train.*.link")
    doc = json.loads(base64.b64decode(json.loads(train.read_text())["payload"]))
    (read,) = doc["environment"]["datasets"]["read"].values()
    assert read["shards_read"] == 2 and read["members"] == SHARDS and read["completed"] is True


def test_fifo_in_a_shards_place_is_refused_without_blocking(shards: Path, tmp_path: Path) -> None:
    import os

    (shards / "shard-000.tar").unlink()
    os.mkfifo(shards / "shard-000.tar")
    got, exc = read_all(loader(tmp_path, shards))
    assert got == [] and exc is not None and "not a regular file" in str(exc)
