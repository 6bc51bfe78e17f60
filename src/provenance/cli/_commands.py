"""The root group and where each subcommand lives; a command's module loads on first use.

`provenance --version` or `provenance verify` should not pay for importing every command module
(and what those import): the table below names each command's module, and the group imports
that module only when the command is looked up. `provenance --help` looks up every command (to
show its short help), so it still lists them all. tests/unit/test_cli_lazy.py checks the table
against the modules' `COMMANDS`.
"""

from __future__ import annotations

import importlib

import click

# command name -> module under provenance.cli whose COMMANDS holds it
COMMAND_MODULES: dict[str, str] = {
    "keygen": "keys",
    "run": "record",
    "verify": "verify",
    "layout": "layout",
    "slsa": "slsa",
    "scan": "scan",
    "oms": "oms",
    "bom": "bom",
    "register": "gate",
    "promote": "gate",
    "revoke": "gate",
    "fetch": "gate",
    "demo": "demo",
    "pipeline": "pipeline",
    "stack": "stack",
    "inspect": "inspect",
    "trace": "trace",
    "report": "report",
    "dataset": "dataset",
}


class LazyGroup(click.Group):
    """A click group whose subcommands are imported when looked up, not at start-up."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(set(self.commands) | set(COMMAND_MODULES))

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in self.commands and cmd_name in COMMAND_MODULES:
            module = importlib.import_module(f"provenance.cli.{COMMAND_MODULES[cmd_name]}")
            for command in module.COMMANDS:
                self.add_command(command)
        return self.commands.get(cmd_name)
