"""The installed package, as a user gets it: the wheel in a fresh virtual environment outside the
repository, `provenance demo` run from an empty folder with the packaged example pipeline.

One environment grows stage by stage (no extras -> [example] -> [mlflow]) so that every
dependency is installed once; each stage checks what runs and what is skipped with that set. To
stay fast the environment has no pip of its own (this interpreter's pip installs into it with
`--python`) and nothing is byte-compiled at install time.
"""

from __future__ import annotations

import ast
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


def _key_verifier_imports_sigstore() -> bool:
    """True while `slsa.verify.verify_builtin` imports sigstore before it knows a key was given.

    Then `provenance slsa verify --key` and the demo's SLSA stage need the sigstore extra. The
    fix belongs to slsa/verify.py; these tests turn green (and strict xfail insists) once it lands.
    """
    tree = ast.parse((REPO / "src/provenance/slsa/verify.py").read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.FunctionDef) and node.name == "verify_builtin":
            return any(
                isinstance(stmt, ast.Import) and any(a.name == "sigstore" for a in stmt.names)
                for stmt in node.body
            )
    return False


needs_key_verifier_without_sigstore = pytest.mark.xfail(
    _key_verifier_imports_sigstore(),
    reason="slsa/verify.py: verify_builtin imports sigstore on the key path",
    raises=AssertionError,
    strict=True,
)


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


@needs_key_verifier_without_sigstore
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


@needs_key_verifier_without_sigstore
def test_mlflow_extra_runs_the_whole_story_and_mlflow_logs_stay_quiet(
    env: Env, tmp_path: Path
) -> None:
    env.install("mlflow,example")
    cwd = empty_dir(tmp_path)
    r = env.run(cwd, "demo")
    assert r.returncode == 0, r.stderr
    assert "PROMOTED: digits-classifier version 1 -> @champion" in r.stdout
    assert "REFUSED: digits-classifier version 2" in r.stdout
    assert "skipped" not in r.stdout
    assert "INFO" not in r.stderr and "mlflow" not in r.stderr, r.stderr
