"""Write docs/cli.md from the commands' own --help text (a test checks it is current).

.venv/bin/python tools/gen_cli_docs.py
"""

from __future__ import annotations

import sys
from pathlib import Path

import click

from provenance.cli import cli

DOC = Path(__file__).resolve().parents[1] / "docs" / "cli.md"
HEADER = """# CLI reference

Generated from `provenance … --help` by `tools/gen_cli_docs.py`; do not edit by hand.

Exit codes of every command: `0` ok · `1` verification or policy failure · `2` usage error ·
`3` unreadable or invalid input · `4` infrastructure failure. `-v` adds detail (and tracebacks on
errors); `--json` prints one JSON document on stdout, logs go to stderr.

Settings come from command-line flags first, then `PROVENANCE_*` environment variables, then
`[tool.provenance]` in `pyproject.toml` (keys: `links_dir`, `key`, `pub_key`, `base_dir`).
"""


def render() -> str:
    parts = [HEADER]

    def walk(cmd: click.Command, path: list[str]) -> None:
        ctx = click.Context(
            cmd,
            info_name=" ".join(["provenance", *path]),
            terminal_width=100,
            max_content_width=100,
            help_option_names=["-h", "--help"],
        )
        title = " ".join(["provenance", *path])
        parts.append(f"\n## `{title}`\n\n```text\n{cmd.get_help(ctx)}\n```\n")
        if isinstance(cmd, click.Group):
            for name in cmd.list_commands(ctx):  # the root group loads its commands lazily
                sub = cmd.get_command(ctx, name)
                if sub is not None:
                    walk(sub, [*path, name])

    walk(cli, [])
    return "".join(parts)


if __name__ == "__main__":
    DOC.write_text(render())
    sys.stdout.write(f"wrote {DOC}\n")
