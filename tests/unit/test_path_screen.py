"""The C-speed screen over all recorded paths never lets an unsafe path through.

`check_consistency` runs the per-path check (`unsafe_artifacts`) only when the screen over the
joined paths says a section may hold one; so every set of paths with an unsafe one must be
flagged by the screen.
"""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from provenance.hashing import objects
from provenance.verification._links import _maybe_unsafe

PIECES = st.sampled_from(["a", "b.c", ".", "..", "/", "\\", ":", "C:", "\x00", "s3:", " ", "é"])
PATHS = st.lists(PIECES, max_size=6).map("".join)


@settings(max_examples=2000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(PATHS, min_size=1, max_size=5, unique=True))
def test_screen_flags_every_set_that_holds_an_unsafe_path(paths: list[str]) -> None:
    if objects.unsafe_artifacts(paths):
        assert _maybe_unsafe(paths)


def test_screen_passes_ordinary_dataset_paths() -> None:
    paths = [f"data/shard{i // 100:03d}/ex-{i}.bin" for i in range(1000)] + ["model/.cfg"]
    assert not objects.unsafe_artifacts(paths)
    assert not _maybe_unsafe(paths)
