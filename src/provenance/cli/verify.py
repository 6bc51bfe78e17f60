"""`provenance verify`."""

from __future__ import annotations

import click

from provenance import _config
from provenance.cli._common import json_option, report
from provenance.signing import load_public_key
from provenance.signing.keys import signer_api
from provenance.verification import verify as run_verify


@click.command()
@click.option(
    "--layout", "layout", required=True, help="Signed layout (from `provenance layout sign`)."
)
@click.option(
    "--layout-key",
    "layout_keys",
    required=True,
    multiple=True,
    help="Owner public key; every one given must have signed the layout.",
)
@click.option(
    "--links",
    "links_dir",
    help="Links directory, or mlflow:RUN_ID / mlflow:PIPELINE_RUN_ID to gather them from the "
    "tracking server [env: PROVENANCE_LINKS_DIR].",
)
@click.option("--base", default=".", show_default=True, help="Where the real files are.")
@click.option(
    "--tracking-uri",
    default=_config.default("tracking_uri", env="MLFLOW_TRACKING_URI"),
    help="MLflow tracking URI for --links mlflow:… [env: MLFLOW_TRACKING_URI].",
)
@click.option(
    "--artifact",
    "artifacts",
    multiple=True,
    metavar="PATTERN",
    help="Only check these files on disk (default: every recorded product).",
)
@json_option
def verify(
    layout: str,
    layout_keys: tuple[str, ...],
    links_dir: str | None,
    base: str,
    artifacts: tuple[str, ...],
    tracking_uri: str | None,
    as_json: bool,
) -> None:
    """Verify the pipeline run against a signed layout, and the real files against its links.

    Always prints a one-line verdict; exits 1 when verification fails.

    \b
    Example:
      provenance verify --layout root.layout --layout-key keys/owner.pub --artifact 'models/**'
      provenance verify --layout root.layout --layout-key keys/owner.pub \\
          --links mlflow:57c15be10439 --tracking-uri http://mlflow:5000
    """
    signer_api()  # securesystemslib's signers without boto3: verifying needs no KMS client
    keys = [load_public_key(k) for k in layout_keys]
    if links_dir and links_dir.startswith("mlflow:"):
        import tempfile

        from provenance.gate.mlflow import MlflowRegistry

        with tempfile.TemporaryDirectory(prefix="provenance-links-") as tmp:
            gathered = MlflowRegistry(tracking_uri).gather_links(links_dir[len("mlflow:") :], tmp)
            result = run_verify(layout, keys, gathered, base, artifacts=artifacts)
    else:
        result = run_verify(layout, keys, _config.links_dir(links_dir), base, artifacts=artifacts)
    report(result, as_json)


COMMANDS = [verify]
