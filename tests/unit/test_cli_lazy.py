"""The root command loads a subcommand's module only when that command is used.

`provenance --version` stays fast because it imports no command module and none of their heavy
dependencies; `--help` still lists every command with its short help; an unknown command is a
usage error (exit 2); the table of where commands live matches the modules' own COMMANDS.
"""

from __future__ import annotations

import importlib
import json
import subprocess
import sys

import click
import pytest

from provenance.cli import cli, main
from provenance.cli._commands import COMMAND_MODULES

HEAVY = ("mlflow", "sigstore", "boto3", "botocore", "in_toto", "securesystemslib", "yaml")


def _loaded_after(code: str) -> list[str]:
    """Module names loaded by a fresh interpreter after running `code`."""
    probe = f"import sys\n{code}\nimport json; print(json.dumps(sorted(sys.modules)))"
    out = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, check=True
    ).stdout
    return list(json.loads(out.splitlines()[-1]))


def test_version_imports_no_command_module_and_nothing_heavy() -> None:
    loaded = _loaded_after("from provenance.cli import main\nassert main(['--version']) == 0")
    assert [m for m in loaded if m.startswith("provenance.cli.") and m[15] != "_"] == []
    assert [m for m in loaded if m.split(".")[0] in HEAVY] == []


def test_import_provenance_loads_nothing_heavy() -> None:
    loaded = _loaded_after("import provenance")
    assert [m for m in loaded if m.split(".")[0] in (*HEAVY, "click")] == []


def test_verify_loads_only_its_own_command_module(tmp_path) -> None:
    loaded = _loaded_after(
        "from provenance.cli import main\n"
        f"assert main(['verify', '--layout', {str(tmp_path / 'none')!r}, '--layout-key', "
        f"{str(tmp_path / 'none.pub')!r}]) == 3"
    )
    commands = [m for m in loaded if m.startswith("provenance.cli.") and m[15] != "_"]
    assert commands == ["provenance.cli.verify"]
    assert not [m for m in loaded if m.split(".")[0] in ("mlflow", "sigstore", "boto3", "botocore")]


def test_boto3_still_imports_after_verify_ran(tmp_path) -> None:
    loaded = _loaded_after(
        "from provenance.cli import main\n"
        f"main(['verify', '--layout', {str(tmp_path / 'none')!r}, '--layout-key', "
        f"{str(tmp_path / 'none.pub')!r}])\n"
        "import boto3\nassert callable(boto3.client)"
    )
    assert "boto3.session" in loaded


def test_every_command_module_is_in_the_table_and_the_table_is_exact() -> None:
    by_module: dict[str, list[str]] = {}
    for name, module in COMMAND_MODULES.items():
        by_module.setdefault(module, []).append(name)
    for module, names in by_module.items():
        commands = importlib.import_module(f"provenance.cli.{module}").COMMANDS
        assert sorted(c.name for c in commands) == sorted(names), module
    ctx = click.Context(cli)
    assert cli.list_commands(ctx) == sorted(COMMAND_MODULES)


def test_help_lists_every_command_with_its_short_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    ctx = click.Context(cli)
    for name in COMMAND_MODULES:
        command = cli.get_command(ctx, name)
        assert command is not None
        line = next(line for line in out.splitlines() if line.strip().startswith(name + " "))
        assert command.get_short_help_str(limit=200)[:15] in line


def test_unknown_command_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["no-such-command"]) == 2
    assert "No such command" in capsys.readouterr().err


# Loaded only by a step that records a dataset, checks a chain, reads shards or S3 objects.
DATASET_MACHINERY = (
    "provenance.datasets._chain",
    "provenance.datasets._verify",
    "provenance.datasets._manifest",
    "provenance.datasets._loader",
    "provenance.datasets._ray",
    "provenance.datasets._torch",
    "provenance.datasets._trusted",
    "provenance.hashing._manifest",
    "provenance.hashing._s3_read",
    "tarfile",
)


def test_run_with_plain_patterns_loads_no_dataset_machinery_ray_or_boto(tmp_path) -> None:
    from provenance.signing import generate

    key = generate("k", str(tmp_path / "keys")).private_path
    (tmp_path / "data.txt").write_text("x")
    links = tmp_path / "links"
    loaded = _loaded_after(
        "from provenance.cli import main\n"
        f"assert main(['run', 'prep', '-q', '--key', {key!r}, '--base', {str(tmp_path)!r}, "
        f"'--links', {str(links)!r}, '-m', 'data.txt', '--', 'true']) == 0"
    )
    assert len(list(links.glob("prep.*.link"))) == 1
    assert "provenance.cli.record" in loaded
    assert [m for m in loaded if m in DATASET_MACHINERY] == []
    heavy = ("ray", "boto3", "botocore", "s3transfer", "mlflow", "in_toto", "sigstore", "yaml")
    assert [m for m in loaded if m.split(".")[0] in heavy] == []


def test_the_datasets_face_still_gives_every_public_name() -> None:
    loaded = _loaded_after(
        "import provenance.datasets as d\n"
        "missing = [n for n in d.__all__ if n not in dir(d) or getattr(d, n) is None]\n"
        "assert not missing, missing\n"
        "from provenance.datasets import Dataset, verify_dataset\n"
        "from provenance.datasets._verify import verify_dataset as real\n"
        "assert verify_dataset is real and Dataset is d.Dataset\n"
        "try:\n"
        "    d.no_such_name\n"
        "except AttributeError:\n"
        "    pass\n"
        "else:\n"
        "    raise AssertionError('no AttributeError')"
    )
    assert "provenance.datasets._verify" in loaded
