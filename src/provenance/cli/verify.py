"""`provenance verify`."""

from __future__ import annotations

import os
from typing import Any

import click

from provenance import _config
from provenance.cli._common import json_option, report
from provenance.hashing import objects
from provenance.signing import load_public_key
from provenance.signing.keys import signer_api
from provenance.verification import VerificationResult
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
    help="Links directory; mlflow:RUN_ID / mlflow:PIPELINE_RUN_ID to gather them from the "
    "tracking server; or s3://BUCKET/PREFIX/RUN, a run's links in an object store (only "
    "<step>.<keyid>.link objects of the layout's steps; anything else there is refused) "
    "[env: PROVENANCE_LINKS_DIR].",
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
      provenance verify --layout root.layout --layout-key keys/owner.pub \\
          --links s3://pipelines/provenance-links/kfp_7c1e2a
    """
    signer_api()  # securesystemslib's signers without boto3: verifying needs no KMS client
    keys = [load_public_key(k) for k in layout_keys]
    links = _config.links_dir(links_dir)
    if links.startswith("mlflow:"):
        import tempfile

        from provenance.gate.mlflow import MlflowRegistry

        with tempfile.TemporaryDirectory(prefix="provenance-links-") as tmp:
            gathered = MlflowRegistry(tracking_uri).gather_links(links[len("mlflow:") :], tmp)
            result = run_verify(layout, keys, gathered, base, artifacts=artifacts)
    elif objects.is_object_uri(links):
        result = _verify_object_links(layout, keys, links, base, artifacts)
    else:
        result = run_verify(layout, keys, links, base, artifacts=artifacts)
    report(result, as_json)


def _verify_object_links(
    layout: str, keys: list[Any], location: str, base: str, artifacts: tuple[str, ...]
) -> VerificationResult:
    """Download the run's links for the layout's steps into a private directory, verify them.

    The layout is checked first, with no links (its signature and expiry; nothing later
    runs): its steps are the only link names fetched, and a bad layout touches no store.
    The links must then carry the run id the location names (sinks store a run's links
    under ``PREFIX/<its run id>``): a whole earlier run copied under RUN is not RUN.
    """
    import tempfile

    from provenance.links import gather_object_links

    with tempfile.TemporaryDirectory(prefix="provenance-links-") as tmp:
        empty = os.path.join(tmp, "none")
        first = run_verify(layout, keys, empty, empty, check_files_on_disk=False)
        if first.layout_obj is None or any(
            f.phase in ("layout-signature", "layout-expiry") for f in first.failures
        ):
            return first
        steps = {s.name for s in first.layout_obj.steps}
        gathered = gather_object_links(location, os.path.join(tmp, "links"), steps)
        result = run_verify(layout, keys, gathered, base, artifacts=artifacts)
    _check_run_dir(result, location)
    return result


def _check_run_dir(result: VerificationResult, location: str) -> None:
    """Fail `result` when its links' run id is not the one the run's directory is named for."""
    from provenance.links import run_name
    from provenance.verification import Failure

    if not result.ok:
        return
    name = location.rstrip("/").rpartition("/")[2]
    run = result.run_id
    if run is None or not run.strip() or run_name(run) != name:
        result.failures.append(
            Failure(
                "run-id",
                f"the links under {location} belong to pipeline run {run or '(none)'}, "
                f"not to run {name} (links are stored under PREFIX/<their run id>)",
            )
        )


COMMANDS = [verify]
