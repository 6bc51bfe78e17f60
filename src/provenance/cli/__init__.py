"""The `provenance` command. Thin: parse, call the library, render, map errors to exit codes.

Exit codes: 0 ok · 1 verification/policy failure · 2 usage · 3 invalid input · 4 infrastructure.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Sequence

import click

from provenance import _config
from provenance._version import __version__
from provenance.cli._commands import LazyGroup
from provenance.cli._common import begin_command, emit_error_json, json_requested
from provenance.errors import ProvenanceError


@click.group(
    cls=LazyGroup,
    context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100},
)
@click.version_option(__version__, "--version", prog_name="provenance")
@click.option("-v", "--verbose", count=True, help="More detail; tracebacks on errors.")
@click.pass_context
def cli(ctx: click.Context, verbose: int) -> None:
    """Record, verify and attest the provenance of ML training pipelines.

    \b
    Example:
      provenance keygen trainer --dir keys
      provenance run train -m 'data/**' -p 'models/**' --key keys/trainer -- python train.py
      provenance verify --layout root.layout --layout-key keys/owner.pub
    """
    ctx.ensure_object(dict)
    ctx.obj["verbose"] = verbose
    level = logging.DEBUG if verbose > 1 else logging.INFO if verbose else logging.WARNING
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    # HTTP retry chatter would bury the one-line error; it is shown with -v.
    logging.getLogger("urllib3").setLevel(logging.DEBUG if verbose else logging.ERROR)
    _quiet_mlflow(verbose)


def _quiet_mlflow(verbose: int) -> None:
    """MLflow logs INFO lines on its own handler; show them only with -v.

    MLflow reads MLFLOW_LOGGING_LEVEL when it is first imported (after this runs, lazily); a
    level the user set is kept. If mlflow is already loaded, its logger is set directly.
    """
    level = "DEBUG" if verbose > 1 else "INFO" if verbose else "WARNING"
    if _config.environment("MLFLOW_LOGGING_LEVEL") is not None:
        return
    _config.set_environment("MLFLOW_LOGGING_LEVEL", level)
    if "mlflow" in sys.modules:
        logging.getLogger("mlflow").setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the console script; returns the exit code (also raised as SystemExit)."""
    args = list(sys.argv[1:] if argv is None else argv)
    verbose = any(a in ("-v", "-vv", "--verbose") for a in args)
    begin_command()
    try:
        rv = cli.main(args=args, prog_name="provenance", standalone_mode=False)
        code = rv if isinstance(rv, int) else 0
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        code = 1
    except click.ClickException as exc:
        exc.show()
        code = 2 if isinstance(exc, click.UsageError) else exc.exit_code
        if json_requested(args):
            emit_error_json(exc, code)
    except ProvenanceError as exc:
        if verbose:
            logging.getLogger("provenance").exception("error")
        click.echo(f"error: {exc}", err=True)
        code = exc.exit_code
        if json_requested(args):  # one document on stdout on every path, failures included
            emit_error_json(exc, code)
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        code = 130
    except Exception as exc:  # last resort: one line, never a silent pass
        if verbose:
            raise
        click.echo(
            f"internal error: {type(exc).__name__}: {exc} (run with -v for details)", err=True
        )
        code = 4
    if argv is None:
        sys.exit(code)
    return code
