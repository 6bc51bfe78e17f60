"""Choosing the engine that hashes a step's plain -m/-p patterns (the Ray side is in
tests/integration/test_datasets_ray.py, on its real cluster): a bad choice is refused before anything runs."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

import provenance
from provenance.errors import UsageError
from provenance.record import StepSpec
from tests.conftest import Result, snapshot


def test_an_unknown_engine_is_refused_when_the_step_is_declared() -> None:
    with pytest.raises(UsageError, match="unknown engine 'spark'"):
        StepSpec("train", materials=["data/**"], engine="spark")
    with pytest.raises(UsageError, match="unknown engine 'spark'"):
        provenance.step("train", materials=["data/**"], key="k", engine="spark")


def test_an_unknown_engine_setting_refuses_the_step_before_it_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., Result]
) -> None:
    monkeypatch.chdir(tmp_path)
    assert cli("keygen", "k", "--dir", "keys").code == 0
    (tmp_path / "data.csv").write_text("x\n")
    monkeypatch.setenv("PROVENANCE_ENGINE", "spark")
    before = snapshot(tmp_path)
    r = cli(
        "run", "s", "-m", "data.csv", "--key", "keys/k",
        "--", sys.executable, "-c", "open('ran', 'w')",
    )  # fmt: skip
    assert r.code == 2 and "unknown engine 'spark'" in r.err, r.err
    assert snapshot(tmp_path) == before  # the command did not run, no link, no run id
