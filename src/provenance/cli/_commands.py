"""Attach every subcommand to the root group (each lives in its own module).

Every command module imports only click and light parts of provenance at import time; the heavy
libraries (mlflow, sigstore, boto3, model-signing) load inside the command that needs them, so
listing them here costs nothing and a missing extra surfaces as one line from that command.
"""

from __future__ import annotations

import click


def register(root: click.Group) -> None:
    """Add the commands in the order `provenance --help` lists them."""
    from provenance.cli import (
        bom,
        demo,
        gate,
        inspect,
        keys,
        layout,
        oms,
        pipeline,
        record,
        report,
        scan,
        slsa,
        stack,
        trace,
        verify,
    )

    root.add_command(keys.keygen)
    root.add_command(record.run)
    for module in (
        verify,
        layout,
        slsa,
        scan,
        oms,
        bom,
        gate,
        demo,
        pipeline,
        stack,
        inspect,
        trace,
        report,
    ):
        for command in module.COMMANDS:
            root.add_command(command)
