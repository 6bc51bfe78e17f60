"""The installed package, as a user gets it: the wheel in a fresh virtual environment outside the
repository, `provenance demo` run from an empty folder with the packaged example pipeline, then
`inspect`, `trace` and `report` (HTML and Markdown) run by the installed package on the demo's
workspace, with and without the mlflow extra.

One environment grows stage by stage (no extras -> [example] -> [mlflow,bom]) so that every
dependency is installed once; each stage checks what runs and what is skipped with that set. To
stay fast the environment has no pip of its own (this interpreter's pip installs into it with
`--python`) and nothing is byte-compiled at install time.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow

INSTALL_TIMEOUT = 1200


@dataclass
class Env:
    root: Path
    wheel: Path

    @property
    def bin(self) -> Path:
        return self.root / "bin"

    def install(self, extras: str = "") -> None:
        requirement = f"ml-provenance[{extras}]" if extras else "ml-provenance"
        subprocess.run(
            [
                sys.executable,
                "-m",
                "pip",
                "--python",
                str(self.bin / "python"),
                "install",
                "--quiet",
                "--no-compile",
                f"{requirement} @ {self.wheel.as_uri()}",
            ],
            check=True,
            env=_clean_env(),
            timeout=INSTALL_TIMEOUT,
        )

    def run(self, cwd: Path, *args: str, timeout: int = 600) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(self.bin / "provenance"), *args],
            cwd=cwd,
            env=_clean_env(),
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def python(self, code: str) -> str:
        return subprocess.run(
            [str(self.bin / "python"), "-c", code],
            cwd=self.root,
            env=_clean_env(),
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()


def _clean_env() -> dict[str, str]:
    drop = ("PROVENANCE_", "MLFLOW_", "PYTHON", "VIRTUAL_ENV", "PIP_REQUIRE_VIRTUALENV")
    return {k: v for k, v in os.environ.items() if not k.startswith(drop)}


def _source_tree(into: Path) -> str:
    """The files git would keep (tracked, or new and not ignored): no stale build/ or egg-info."""
    listed = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=REPO,
        capture_output=True,
        check=True,
    ).stdout.split(b"\0")
    for rel in filter(None, (os.fsdecode(name) for name in listed)):
        if (REPO / rel).is_file():
            (into / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / rel, into / rel)
    return str(into)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    dist = tmp_path_factory.mktemp("dist")
    source = _source_tree(tmp_path_factory.mktemp("src"))
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "-w", str(dist), source],
        check=True,
        env=_clean_env(),
        timeout=INSTALL_TIMEOUT,
    )
    (wheel,) = dist.glob("ml_provenance-*.whl")
    root = tmp_path_factory.mktemp("venv")
    assert REPO not in root.parents
    subprocess.run(
        [sys.executable, "-m", "venv", "--without-pip", str(root)], check=True, timeout=300
    )
    yield Env(root, wheel)


def empty_dir(tmp_path: Path) -> Path:
    d = tmp_path / "empty"
    d.mkdir()
    return d


def explore(env: Env, ws: Path) -> None:
    """`inspect`, `trace` and `report` of the installed package on the demo's workspace."""
    (link,) = (ws / ".provenance/links").glob("train.*.link")
    r = env.run(ws, "inspect", str(link.relative_to(ws)), "--key", "keys/trainer.pub")
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"{link.name}: in-toto link" in r.stdout and "signature: VALID" in r.stdout
    assert "step: train" in r.stdout and "models/model.safetensors" in r.stdout

    layout = ("--layout", "root.layout", "--layout-key", "keys/owner.pub")
    r = env.run(ws, "trace", "models/model.safetensors", *layout)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.startswith("models/model.safetensors  (verified with root.layout)")
    assert "← train key" in r.stdout and "← prepare key" in r.stdout
    assert "data/raw/digits.csv.gz" in r.stdout and "(raw input)" in r.stdout
    assert "file on disk: matches the recorded digest" in r.stdout

    r = env.run(ws, "report", *layout, "--format", "html", "-o", "r.html")
    assert r.returncode == 0, r.stdout + r.stderr
    html = (ws / "r.html").read_text()
    assert html.startswith("<!DOCTYPE html>") and "<title>Supply chain report: PASS</title>" in html
    assert "<svg" in html and "<script src" not in html and "default-src 'none'" in html
    assert all(f">{step}<" in html for step in ("prepare", "train", "evaluate")), html

    r = env.run(ws, "report", *layout, "--format", "markdown")
    assert r.returncode == 0, r.stdout + r.stderr
    md = r.stdout
    assert md.startswith("## ✅ ML supply chain: PASS") and "```mermaid" in md
    assert all(f"| **{step}** |" in md for step in ("prepare", "train", "evaluate")), md
    assert "| files | **PASS** |" in md


def test_wheel_ships_the_example_pipeline_at_its_repository_paths(env: Env) -> None:
    import zipfile

    names = set(zipfile.ZipFile(env.wheel).namelist())
    for path in [*REPO.glob("steps/*.py"), *REPO.glob("layouts/*.yaml")]:
        rel = path.relative_to(REPO).as_posix()
        assert f"provenance/_example/{rel}" in names, rel
    assert "provenance/py.typed" in names
    assert not any(n.startswith(("steps/", "layouts/", "tests/")) for n in names)


def test_bare_install_skips_the_pipeline_naming_the_extra(env: Env, tmp_path: Path) -> None:
    env.install()
    location = env.python("import provenance; print(provenance.__file__)")
    assert Path(location).is_relative_to(env.root), location
    cwd = empty_dir(tmp_path)
    r = env.run(cwd, "demo")
    assert r.returncode == 0, r.stderr
    assert "skipped" in r.stdout and "pip install 'ml-provenance[example]'" in r.stdout
    assert "Traceback" not in r.stderr and "internal error" not in r.stderr
    keys = env.run(cwd, "keygen", "owner", "--dir", "keys")
    assert keys.returncode == 0 and (cwd / "keys/.gitignore").is_file()


def test_example_extra_runs_the_pipeline_and_skips_mlflow(env: Env, tmp_path: Path) -> None:
    env.install("example")
    assert (
        env.python(
            "import importlib.util as u; print([m for m in ('mlflow', 'sigstore') if u.find_spec(m)])"
        )
        == "[]"
    )
    cwd = empty_dir(tmp_path)
    r = env.run(cwd, "demo")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert "PASS: 3 step(s) verified" in out
    assert "built-in key verifier" in out  # SLSA provenance signed and verified without sigstore
    assert "mlflow promote: skipped, mlflow is not installed" in out
    assert "ML-BOM: skipped, bom is not installed (pip install 'ml-provenance[bom]')" in out
    assert "pip install 'ml-provenance[mlflow]'" in out
    ws = cwd / "demo-workspace"
    for rel in ("steps/train.py", "steps/prepare.py", "layouts/train.yaml"):
        assert (ws / rel).read_bytes() == (REPO / rel).read_bytes(), rel
    # `slsa verify --key` works without sigstore installed
    v = env.run(
        ws,
        "slsa",
        "verify",
        "models/model.safetensors",
        "--provenance",
        "provenance.intoto.jsonl",
        "--source-uri",
        "https://github.com/ml-provenance/example-pipeline",
        "--source-branch",
        "main",
        "--key",
        "keys/trainer.pub",
    )
    assert v.returncode == 0, v.stdout + v.stderr
    assert v.stdout.startswith("PASS")
    explore(env, ws)


def test_mlflow_extra_runs_the_whole_story_and_mlflow_logs_stay_quiet(
    env: Env, tmp_path: Path
) -> None:
    env.install("mlflow,example,bom")
    cwd = empty_dir(tmp_path)
    r = env.run(cwd, "demo")
    assert r.returncode == 0, r.stderr
    assert "PROMOTED: digits-classifier version 1 -> @champion" in r.stdout
    assert "REFUSED: digits-classifier version 2" in r.stdout
    assert "ML-BOM: CycloneDX 1.6 -> bom.cdx.json" in r.stdout
    assert "skipped" not in r.stdout
    assert "INFO" not in r.stderr and "mlflow" not in r.stderr, r.stderr
    explore(env, cwd / "demo-workspace")
