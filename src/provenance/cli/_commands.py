"""Attach every subcommand to the root group (each lives in its own module)."""

from __future__ import annotations

import click


def register(root: click.Group) -> None:
    from provenance.cli import keys, record

    root.add_command(keys.keygen)
    root.add_command(record.run)
    for name in (
        "verify",
        "layout",
        "slsa",
        "scan",
        "oms",
        "gate",
        "demo",
        "inspect",
        "trace",
        "report",
    ):
        try:
            module = __import__(f"provenance.cli.{name}", fromlist=["COMMANDS"])
        except ModuleNotFoundError as exc:
            if exc.name != f"provenance.cli.{name}":
                raise
            continue
        for command in module.COMMANDS:
            root.add_command(command)
