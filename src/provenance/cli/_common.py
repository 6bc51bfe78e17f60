"""Shared CLI plumbing: output of one JSON document or text, key options."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON document on stdout."
)
quiet_option = click.option("-q", "--quiet", is_flag=True, help="No progress bar.")


def emit_json(doc: Any) -> None:
    sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")


def say(text: str) -> None:
    click.echo(text)


def warn(text: str) -> None:
    click.echo(text, err=True)


def report(doc: dict[str, Any], verdict: str, failures: list[str], as_json: bool, ok: bool) -> None:
    """Print a result (JSON document, or verdict then the other failures); exit 1 unless ok."""
    if as_json:
        emit_json(doc)
    else:
        say(verdict)
        for failure in failures[1:]:
            say(f"- {failure}")
    if not ok:
        raise click.exceptions.Exit(1)
