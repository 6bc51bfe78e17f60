"""A link of another pipeline run is named with that run's whole id, never a prefix of it.

Orchestrators' run ids are long and share long prefixes (two Airflow DAG runs of one DAG differ
only in their timestamps), so a shortened id could name both runs.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from tests.conftest import THREE_STEPS, verify

EARLIER = "airflow:digits/scheduled__2026-12-07T03:00:00+00:00"
CURRENT = "airflow:digits/scheduled__2026-12-07T04:00:00+00:00"


def test_stale_link_message_names_both_runs_in_full_when_they_share_a_long_prefix(
    project: Path, cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert EARLIER[:32] == CURRENT[:32] and EARLIER != CURRENT
    (project / "layout.yaml").write_text(THREE_STEPS)
    monkeypatch.setenv("PROVENANCE_RUN_ID", EARLIER)
    script = "import os; os.makedirs('data', exist_ok=True); open('data/d.txt', 'w').write('1')"
    r = cli(
        "run",
        "prepare",
        "-p",
        "data/**",
        "--key",
        "keys/data-eng",
        "--",
        sys.executable,
        "-c",
        script,
    )
    assert r.code == 0, r.err
    monkeypatch.setenv("PROVENANCE_RUN_ID", CURRENT)
    script = "import os; os.makedirs('models', exist_ok=True); open('models/m', 'w').write('2')"
    r = cli(
        "run", "train", "-m", "data/**", "-p", "models/**", "--key", "keys/trainer", "--",
        sys.executable, "-c", script,
    )  # fmt: skip
    assert r.code == 0, r.err
    r = cli("run", "evaluate", "-m", "models/**", "--key", "keys/trainer", "--", "true")
    assert r.code == 0, r.err
    r = cli("layout", "sign", "layout.yaml", "--key", "keys/owner", "-o", "root.layout")
    assert r.code == 0, r.err

    r = verify(cli)
    assert r.code == 1, r.out + r.err
    assert "links come from 2 different pipeline runs" in r.out
    # Each run named whole with its links, and the stale link with both ids whole.
    assert f"run {EARLIER}: prepare" in r.out and f"run {CURRENT}: train" in r.out, r.out
    assert f"from pipeline run {EARLIER}, not {CURRENT} like the other links" in r.out, r.out
