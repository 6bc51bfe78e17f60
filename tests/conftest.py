"""Shared fixtures: an isolated project workspace with keys, the CLI run in-process."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pytest

from provenance.cli import main

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
FUNCTIONARIES = ("data-eng", "trainer", "evaluator")
# prepare -> train -> evaluate over data/* and models/*, for tests that write their own layout.
THREE_STEPS = """\
expires: 30d
functionaries:
  data-eng: keys/data-eng.pub
  trainer: keys/trainer.pub
steps:
  - name: prepare
    functionaries: [data-eng]
    products:
      - create: "data/*"
  - name: train
    functionaries: [trainer]
    materials:
      - match: "data/*"
        from: prepare
    products:
      - create: "models/*"
  - name: evaluate
    functionaries: [trainer]
    materials:
      - match: "models/*"
        from: train
"""


@dataclass
class Result:
    code: int
    out: str
    err: str


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith(("PROVENANCE_", "MLFLOW_", "GITHUB_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("CI", "true")  # no progress bars in captured output


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., Result]:
    """Run `provenance ARGS` in-process; return exit code, stdout and stderr."""

    def invoke(*args: str) -> Result:
        capsys.readouterr()
        code = main([str(a) for a in args])
        captured = capsys.readouterr()
        return Result(code, captured.out, captured.err)

    return invoke


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, cli: Callable[..., Result]) -> Path:
    """A fresh copy of the example project: steps/, layouts/, raw data and keys; cwd set to it."""
    root = tmp_path / "project"
    root.mkdir()
    shutil.copytree(REPO / "steps", root / "steps", ignore=shutil.ignore_patterns("__pycache__"))
    if (REPO / "layouts").is_dir():
        shutil.copytree(REPO / "layouts", root / "layouts")
    raw = root / "data" / "raw"
    raw.mkdir(parents=True)
    digits = resources.files("sklearn.datasets.data") / "digits.csv.gz"
    (raw / "digits.csv.gz").write_bytes(digits.read_bytes())
    monkeypatch.chdir(root)
    for name in (*FUNCTIONARIES, "owner"):
        assert cli("keygen", name, "--dir", "keys").code == 0
    return root


def run_pipeline(root: Path, steps: tuple[str, ...] = ("prepare", "train", "evaluate")) -> None:
    """Run the example steps as a user would: `python steps/NAME.py` in the project."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PROVENANCE_")}
    env["PYTHONPATH"] = str(root)
    for step in steps:
        subprocess.run(
            [sys.executable, f"steps/{step}.py"], cwd=root, env=env, check=True, capture_output=True
        )


@pytest.fixture
def pipeline(project: Path) -> Iterator[Path]:
    run_pipeline(project)
    yield project


def links_in(root: Path, links: str = ".provenance/links") -> list[str]:
    d = root / links
    return sorted(p.name for p in d.glob("*.link")) if d.is_dir() else []


def sign_layout(
    cli, yaml_path: str = "layouts/train.yaml", key: str = "keys/owner", *extra: str
) -> Result:
    return cli("layout", "sign", yaml_path, "--key", key, "-o", "root.layout", *extra)


@pytest.fixture
def signed(pipeline: Path, cli) -> Path:
    """The example pipeline run honestly, with layouts/train.yaml signed into root.layout."""
    r = sign_layout(cli)
    assert r.code == 0, r.err
    return pipeline


def verify(cli, *extra: str, layout_key: str = "keys/owner.pub") -> Result:
    return cli("verify", "--layout", "root.layout", "--layout-key", layout_key, *extra)


def in_toto_verify(root: Path) -> subprocess.CompletedProcess[str]:
    """The upstream reference verifier on the same layout and links."""
    return subprocess.run(
        [
            str(BIN / "in-toto-verify"),
            "--layout",
            "root.layout",
            "--verification-keys",
            "keys/owner.pub",
            "--link-dir",
            ".provenance/links",
        ],
        cwd=root,
        capture_output=True,
        text=True,
    )


def snapshot(root: Path) -> dict[str, bytes]:
    """Every file under root (for asserting that a command changed nothing)."""
    return {
        str(p.relative_to(root)): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file() and "__pycache__" not in p.parts
    }


# The local production-like stack (PostgreSQL + S3 + MLflow), started once per test session.
from tests.stack_fixture import stack  # noqa: E402, F401
from tests.stack_gate import gate_project  # noqa: E402, F401
