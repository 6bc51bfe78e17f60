"""Shared CLI plumbing: output of one JSON document or text, key options."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Sequence
from typing import Any, Protocol

import click

from provenance._fs import check_output

json_option = click.option(
    "--json", "as_json", is_flag=True, help="Print one JSON document on stdout."
)
quiet_option = click.option("-q", "--quiet", is_flag=True, help="No progress bar.")


_emitted = False


def emit_json(doc: Any) -> None:
    global _emitted
    _emitted = True
    sys.stdout.write(json.dumps(doc, indent=2, sort_keys=True) + "\n")


def json_requested(args: Sequence[str]) -> bool:
    """`--json` among the options (not in a wrapped command after `--`)."""
    options = args[: args.index("--")] if "--" in args else args
    return "--json" in options


def begin_command() -> None:
    """Forget what an earlier in-process invocation printed."""
    global _emitted
    _emitted = False


def emit_error_json(exc: BaseException, code: int) -> None:
    """The one document of a --json run that ended in an error, unless one was printed already."""
    if not _emitted:
        error = {"type": type(exc).__name__, "message": str(exc)}
        emit_json({"ok": False, "exit_code": code, "error": error})


def say(text: str) -> None:
    click.echo(text)


def warn(text: str) -> None:
    click.echo(text, err=True)


def guard_output(output: str, inputs: list[str | None], keys: list[str | None]) -> None:
    """Refuse `-o` over one of the command's inputs, over a key, or where it cannot be written.

    `keys` are the key files the command was given (signer URIs are skipped): they are inputs,
    and their directory counts as a keys directory (besides `keys/`) unless it is the cwd.
    """
    from provenance.signing.keys import is_uri

    key_files = [k for k in keys if k and not is_uri(k)]
    here = os.path.realpath(".")
    key_dirs = ["keys"] + [
        d for d in {os.path.dirname(k) or "." for k in key_files} if os.path.realpath(d) != here
    ]
    check_output(output, [i for i in (*inputs, *key_files) if i], key_dirs=key_dirs)


class Outcome(Protocol):
    """What every checking command reports: verification, SLSA verification, promotion."""

    @property
    def ok(self) -> bool: ...

    @property
    def verdict(self) -> str: ...

    def lines(self) -> list[str]: ...

    def to_dict(self) -> dict[str, Any]: ...


def report(result: Outcome, as_json: bool) -> None:
    """Print one JSON document, or the verdict line and the details; exit 1 unless ok.

    Every text line goes through `printable`: names from disk, links or registries may hold
    newlines or escapes that would otherwise forge lines of output.
    """
    if as_json:
        emit_json(result.to_dict())
    else:
        from provenance.hashing import printable

        say(printable(result.verdict))
        for line in result.lines():
            say(printable(line))
    if not result.ok:
        raise click.exceptions.Exit(1)
