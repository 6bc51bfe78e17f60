"""Recording steps: decorator and `provenance run`, on success, failure and hostile paths."""

from __future__ import annotations

import base64
import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

import provenance
from provenance.errors import KeyLoadError, PathEscapeError, UsageError
from tests.conftest import BIN, links_in


def payload(link: Path) -> dict:
    return json.loads(base64.b64decode(json.loads(link.read_bytes())["payload"]))


def only_link(root: Path) -> Path:
    (name,) = links_in(root)
    return root / ".provenance/links" / name


def test_decorator_records_materials_products_command_and_environment(project: Path) -> None:
    Path("in.txt").write_text("input")

    @provenance.step("copy", materials=["in.txt"], products=["out/**"], key="keys/trainer")
    def copy(times: int, note: str = "x") -> str:
        Path("out").mkdir()
        Path("out/o.txt").write_text(Path("in.txt").read_text() * times)
        return "done"

    assert copy(2) == "done"
    link = only_link(project)
    assert link.name.startswith("copy.") and link.name.endswith(".link")
    data = payload(link)
    assert data["_type"] == "link" and data["name"] == "copy"
    assert data["materials"] == {"in.txt": {"sha256": hashlib.sha256(b"input").hexdigest()}}
    assert data["products"] == {"out/o.txt": {"sha256": hashlib.sha256(b"inputinput").hexdigest()}}
    assert data["command"] == [
        "tests.unit.test_record:test_decorator_records_materials_products_command"
        "_and_environment.<locals>.copy",
        '{"note":"x","times":2}',
    ]
    env = data["environment"]
    for field in (
        "pipeline_run_id",
        "git_commit",
        "git_dirty",
        "python",
        "platform",
        "packages_sha256",
        "mlflow_run_id",
    ):
        assert field in env
    assert len(env["packages_sha256"]) == 64
    assert env["python"] == ".".join(map(str, sys.version_info[:3]))


def test_decorator_failure_propagates_unchanged_and_writes_no_link(project: Path) -> None:
    boom = RuntimeError("training diverged")

    @provenance.step("train", materials=["steps/**"], products=["models/**"], key="keys/trainer")
    def train() -> None:
        Path("models").mkdir()
        Path("models/half.bin").write_bytes(b"partial")
        raise boom

    with pytest.raises(RuntimeError) as info:
        train()
    assert info.value is boom
    assert links_in(project) == []
    assert not any(p.name.startswith(".tmp") for p in project.rglob("*"))


def test_bad_key_fails_before_the_step_runs(project: Path) -> None:
    ran = []

    @provenance.step("train", products=["models/**"], key="keys/nope")
    def train() -> None:
        ran.append(1)

    with pytest.raises(KeyLoadError, match="keys/nope"):
        train()
    assert ran == [] and links_in(project) == []


def test_run_wrapper_success_records_argv(project: Path, cli) -> None:
    r = cli(
        "run",
        "gen",
        "-p",
        "gen/**",
        "--key",
        "keys/data-eng",
        "--",
        sys.executable,
        "-c",
        "import os; os.mkdir('gen'); open('gen/a','w').write('a')",
    )
    assert r.code == 0, r.err
    data = payload(only_link(project))
    assert data["command"][0] == sys.executable and data["byproducts"]["return-value"] == 0
    assert list(data["products"]) == ["gen/a"]


def test_run_wrapper_failure_passes_exit_code_and_writes_no_link(project: Path, cli) -> None:
    r = cli(
        "run",
        "gen",
        "-p",
        "gen/**",
        "--key",
        "keys/data-eng",
        "--",
        sys.executable,
        "-c",
        "import os, sys; os.mkdir('gen'); sys.exit(7)",
    )
    assert r.code == 7
    assert "exited with status 7" in r.err and "no link written" in r.err
    assert links_in(project) == []


def test_run_wrapper_missing_command_is_usage_error(project: Path, cli) -> None:
    r = cli("run", "gen", "--key", "keys/data-eng", "--", "definitely-not-a-command-xyz")
    assert r.code == 2 and "command not found" in r.err
    assert links_in(project) == []


@pytest.mark.parametrize("pattern", ["../outside/**", "/etc/passwd", "data/../../x"])
def test_pattern_escaping_base_is_refused(project: Path, cli, pattern: str) -> None:
    r = cli("run", "s", "-m", pattern, "--key", "keys/trainer", "--", "true")
    assert r.code == 3 and pattern.split("/")[0] in r.err
    assert links_in(project) == []


def test_symlink_out_of_base_is_refused_naming_it(project: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret.txt"
    secret.write_text("s")
    Path("data/raw/leak.txt").symlink_to(secret)

    @provenance.step("prepare", materials=["data/**"], key="keys/data-eng")
    def prepare() -> None: ...

    with pytest.raises(PathEscapeError, match=r"data/raw/leak\.txt"):
        prepare()
    assert links_in(project) == []


def test_symlink_inside_base_is_hashed_as_its_target(project: Path) -> None:
    Path("data/raw/alias.gz").symlink_to("digits.csv.gz")

    @provenance.step("prepare", materials=["data/**"], key="keys/data-eng")
    def prepare() -> None: ...

    prepare()
    mats = payload(only_link(project))["materials"]
    assert mats["data/raw/alias.gz"] == mats["data/raw/digits.csv.gz"]


def test_keys_links_and_vcs_dirs_are_never_recorded(project: Path) -> None:
    Path(".git").mkdir()
    Path(".git/HEAD").write_text("ref")
    Path("__pycache__").mkdir()
    Path("__pycache__/x.pyc").write_bytes(b"x")

    @provenance.step("all", materials=["**"], products=["**"], key="keys/trainer")
    def everything() -> None: ...

    everything()
    everything()  # the second run must not record the first run's link either
    data = payload(only_link(project))
    recorded = set(data["materials"]) | set(data["products"])
    assert "keys/trainer" not in recorded
    assert not any(p.startswith((".provenance/", ".git/", "__pycache__/")) for p in recorded)
    assert "keys/trainer.pub" in recorded and "data/raw/digits.csv.gz" in recorded


def test_pattern_matching_nothing_records_nothing(project: Path) -> None:
    @provenance.step("s", materials=["nothing/**"], products=["none.txt"], key="keys/trainer")
    def s() -> None: ...

    s()
    data = payload(only_link(project))
    assert data["materials"] == {} and data["products"] == {}


def test_steps_of_one_links_dir_share_a_run_id(project: Path, cli) -> None:
    for step in ("a", "b"):
        assert cli("run", step, "--key", "keys/trainer", "--", "true").code == 0
    ids = {
        payload(project / ".provenance/links" / n)["environment"]["pipeline_run_id"]
        for n in links_in(project)
    }
    assert len(ids) == 1


def test_run_id_from_environment_wins(project: Path, cli, monkeypatch) -> None:
    monkeypatch.setenv("PROVENANCE_RUN_ID", "run-42")
    assert cli("run", "a", "--key", "keys/trainer", "--", "true").code == 0
    assert payload(only_link(project))["environment"]["pipeline_run_id"] == "run-42"


def test_key_from_environment_and_links_dir_from_pyproject(project: Path, cli, monkeypatch) -> None:
    Path("pyproject.toml").write_text('[tool.provenance]\nlinks_dir = "evidence"\n')
    monkeypatch.setenv("PROVENANCE_KEY", "keys/trainer")
    assert cli("run", "a", "--", "true").code == 0
    assert links_in(project, "evidence") and links_in(project) == []


def test_invalid_step_name_is_usage_error() -> None:
    with pytest.raises(UsageError, match="invalid step name"):
        provenance.step("../evil")


def test_installed_console_script_runs_as_subprocess(project: Path) -> None:
    exe = str(BIN / "provenance")
    version = subprocess.run([exe, "--version"], capture_output=True, text=True, check=True)
    assert version.stdout.strip() == f"provenance, version {provenance.__version__}"
    proc = subprocess.run(
        [exe, "run", "touch", "-p", "t.txt", "--key", "keys/trainer", "--", "touch", "t.txt"],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    assert list(payload(only_link(project))["products"]) == ["t.txt"]
    bad = subprocess.run(
        [exe, "run", "x", "--key", "keys/none", "--", "true"], capture_output=True, text=True
    )
    assert bad.returncode == 3 and "Traceback" not in bad.stderr


def test_import_is_light() -> None:
    code = (
        "import sys, provenance; heavy = {'mlflow', 'sigstore', 'in_toto', 'rich', 'numpy'} & "
        "{m.split('.')[0] for m in sys.modules}; print(sorted(heavy))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_every_command_has_help_with_an_example(cli) -> None:
    from provenance.cli import cli as group

    def walk(cmd, path):
        yield path, cmd
        for name, sub in getattr(cmd, "commands", {}).items():
            yield from walk(sub, [*path, name])

    for path, _cmd in walk(group, []):
        r = cli(*path, "--help")
        assert r.code == 0 and "Example" in r.out, path
    assert os.environ.get("CI") == "true"


def test_cli_reference_is_current() -> None:
    import importlib.util

    from tests.conftest import REPO

    spec = importlib.util.spec_from_file_location("gen", REPO / "tools" / "gen_cli_docs.py")
    gen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gen)
    assert (REPO / "docs" / "cli.md").read_text() == gen.render(), (
        "docs/cli.md is stale: run .venv/bin/python tools/gen_cli_docs.py"
    )


def test_public_verify_stays_a_function_whatever_is_imported_first() -> None:
    code = (
        "import provenance.verification.result, provenance.verification._files\n"
        "import provenance\nassert callable(provenance.verify), provenance.verify\n"
        "from provenance import verify\nassert verify.__name__ == 'verify'"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_run_wrapper_command_killed_by_signal_exits_like_a_shell(project: Path, cli) -> None:
    r = cli(
        "run",
        "gen",
        "-p",
        "gen/**",
        "--key",
        "keys/data-eng",
        "--",
        "sh",
        "-c",
        "mkdir gen; touch gen/partial; kill -TERM $$",
    )
    assert r.code == 128 + 15 and "no link written" in r.err
    assert links_in(project) == []


def test_escaping_product_pattern_fails_when_the_step_is_declared(project: Path) -> None:
    with pytest.raises(PathEscapeError, match=r"\.\./elsewhere"):

        @provenance.step("s", products=["../elsewhere/**"], key="keys/trainer")
        def s() -> None: ...

    assert links_in(project) == []


def test_git_state_names_the_commit_and_whether_tracked_files_changed(tmp_path: Path) -> None:
    from provenance.record._environment import git_state

    assert git_state(str(tmp_path)) == {"commit": None, "dirty": None}  # no repository
    env = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1"}

    def git(*args: str) -> str:
        return subprocess.run(
            ["git", "-c", "user.name=t", "-c", "user.email=t@t", *args],
            cwd=tmp_path,
            env=env,
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()

    git("init", "-q")
    (tmp_path / "train.py").write_text("print(1)\n")
    git("add", "train.py")
    git("commit", "-q", "-m", "one")
    head = git("rev-parse", "HEAD")
    (tmp_path / "untracked.bin").write_bytes(b"x")  # untracked files do not make it dirty
    assert git_state(str(tmp_path)) == {"commit": head, "dirty": False}
    (tmp_path / "train.py").write_text("print(2)\n")
    assert git_state(str(tmp_path)) == {"commit": head, "dirty": True}
    # The repository's own config cannot make the recorder run a command (fsmonitor).
    marker = tmp_path.parent / f"{tmp_path.name}-fsmonitor-ran"
    hook = tmp_path.parent / f"{tmp_path.name}-fsmonitor.sh"
    hook.write_text(f"#!/bin/sh\ntouch {marker}\n")
    hook.chmod(0o755)
    git("config", "core.fsmonitor", str(hook))
    assert git_state(str(tmp_path)) == {"commit": head, "dirty": True}
    assert not marker.exists()


def test_the_active_mlflow_run_is_read_on_the_steps_thread(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """MLflow keeps the active run per thread: the link names it and goes to it (its sink)."""
    import threading
    import types

    local = threading.local()
    local.run = types.SimpleNamespace(
        info=types.SimpleNamespace(run_id="run-on-this-thread"),
        data=types.SimpleNamespace(tags={}),
    )
    logged: list[tuple[str, str]] = []
    fake = types.ModuleType("mlflow")
    fake.active_run = lambda: getattr(local, "run", None)  # type: ignore[attr-defined]
    fake.log_artifact = lambda path, artifact_path: logged.append((path, artifact_path))  # type: ignore[attr-defined]
    fake.set_tags = lambda tags: None  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "mlflow", fake)
    Path("in.txt").write_text("x")

    @provenance.step("tiny", materials=["in.txt"], products=["out.txt"], key="keys/trainer")
    def tiny() -> None:
        Path("out.txt").write_text("y")

    tiny()
    link = only_link(project)
    assert payload(link)["environment"]["mlflow_run_id"] == "run-on-this-thread"
    assert logged == [(str(link), "provenance/links")]
