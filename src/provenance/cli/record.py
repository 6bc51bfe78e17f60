"""`provenance run`."""

from __future__ import annotations

import click

from provenance.cli._common import emit_json, json_option, quiet_option, say
from provenance.record import StepSpec, run_step


@click.command(context_settings={"ignore_unknown_options": False})
@click.argument("step")
@click.option(
    "-m",
    "--materials",
    "materials",
    multiple=True,
    metavar="PATTERN",
    help="Material pattern (repeatable).",
)
@click.option(
    "-p",
    "--products",
    "products",
    multiple=True,
    metavar="PATTERN",
    help="Product pattern (repeatable).",
)
@click.option(
    "--key", envvar="PROVENANCE_KEY", help="Private key PEM or signer URI [env: PROVENANCE_KEY]."
)
@click.option("--pub-key", help="Public key of a URI signer.")
@click.option("--links", "links_dir", help="Links directory [env: PROVENANCE_LINKS_DIR].")
@click.option("--base", "base_dir", help="Project root the patterns are relative to [default: .].")
@click.option(
    "--exclude", "excludes", multiple=True, metavar="PATTERN", help="Extra exclude (repeatable)."
)
@quiet_option
@json_option
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(
    step: str,
    materials: tuple[str, ...],
    products: tuple[str, ...],
    key: str | None,
    pub_key: str | None,
    links_dir: str | None,
    base_dir: str | None,
    excludes: tuple[str, ...],
    quiet: bool,
    as_json: bool,
    command: tuple[str, ...],
) -> None:
    """Run COMMAND as pipeline step STEP and write its signed link.

    Materials are hashed before, products after the command. A non-zero exit writes no link and
    is passed through as this command's exit status. There is no timeout.

    \b
    Example:
      provenance run train -m 'data/processed/**' -m steps/train.py -p 'models/**' \\
          --key keys/trainer -- python steps/train.py --epochs 10
    """
    spec = StepSpec(step, materials, products, key, pub_key, links_dir, base_dir, excludes, quiet)
    path = run_step(spec, command)
    if as_json:
        emit_json({"step": step, "link": path})
    else:
        say(f"step '{step}' recorded: {path}")
