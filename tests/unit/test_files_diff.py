"""The files phase compares digests a block at a time; what it reports must be exactly what
`Manifest.diff` of the expected products against the hashed files reports."""

from __future__ import annotations

import random

import pytest

from provenance.hashing import Manifest
from provenance.verification import _files

DIGESTS = ["ab" * 32, "cd" * 32, "ef" * 32]


@pytest.mark.parametrize("block", [1, 3, 4096])
def test_block_comparison_equals_the_manifest_diff(
    block: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_files, "_BLOCK", block)
    rnd = random.Random(block)
    for _ in range(400):
        names = [f"d/p{i}" for i in range(rnd.randint(0, 24))]
        expected = {p: rnd.choice(DIGESTS) for p in rnd.sample(names, rnd.randint(0, len(names)))}
        files = {p: rnd.choice(DIGESTS) for p in rnd.sample(names, rnd.randint(0, len(names)))}
        present = sorted(files)
        packed = bytearray(b"".join(bytes.fromhex(files[p]) for p in present))
        # some expected files were found outside the walked product directories
        outside = {p for p in present if p in expected and rnd.random() < 0.3}
        on_disk = set(present) - outside
        got = _files._changes(expected, present, packed, on_disk.__contains__, outside)
        want = Manifest(expected).diff(files)
        assert got == list(want)
