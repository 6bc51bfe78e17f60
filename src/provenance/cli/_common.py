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
