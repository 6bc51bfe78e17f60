"""`provenance register|promote|fetch`: the MLflow promotion gate."""

from __future__ import annotations

import click

from provenance import _config
from provenance.cli._common import emit_json, json_option, report, say

tracking_option = click.option(
    "--tracking-uri",
    envvar="MLFLOW_TRACKING_URI",
    help="MLflow tracking URI [env: MLFLOW_TRACKING_URI].",
)


@click.command()
@click.argument("model")
@click.argument("path")
@click.option("--links", "links_dir", help="Also log these links with the version's run.")
@click.option("--run-id", help="Log into this existing run instead of a new one.")
@tracking_option
@json_option
def register(
    model: str,
    path: str,
    links_dir: str | None,
    run_id: str | None,
    tracking_uri: str | None,
    as_json: bool,
) -> None:
    """Register the files in PATH as a new version of MODEL (plain files, no flavor).

    \b
    Example:
      provenance register digits models --links .provenance/links
    """
    from provenance.gate import register_files

    reg = register_files(model, path, links_dir=links_dir, run_id=run_id, tracking_uri=tracking_uri)
    if as_json:
        emit_json(
            {"model": reg.name, "version": reg.version, "run_id": reg.run_id, "source": reg.source}
        )
    else:
        say(f"registered {reg.name} version {reg.version} from {path} (run {reg.run_id})")


@click.command()
@click.argument("model")
@click.argument("version")
@click.option("--alias", required=True, help="Registry alias to set, e.g. champion.")
@click.option("--layout", required=True, help="Signed layout.")
@click.option("--layout-key", "layout_keys", required=True, multiple=True, help="Owner public key.")
@click.option(
    "--gate-key",
    required=True,
    envvar="PROVENANCE_GATE_KEY",
    help="Gate private key or signer URI [env: PROVENANCE_GATE_KEY].",
)
@click.option(
    "--links", "links_dir", help="Links directory [default: the version's run artifacts]."
)
@click.option("--artifact-path", help="Where the registered files were produced (e.g. models/).")
@click.option("--provenance", "provenance_path", help="SLSA provenance to check as well.")
@click.option("--source-uri", help="Expected source for the SLSA check.")
@click.option("--provenance-key", help="Public key of key-signed SLSA provenance.")
@click.option("--trusted-root", help="Sigstore trusted root for the SLSA check.")
@tracking_option
@json_option
def promote(
    model: str,
    version: str,
    alias: str,
    layout: str,
    layout_keys: tuple[str, ...],
    gate_key: str,
    links_dir: str | None,
    artifact_path: str | None,
    provenance_path: str | None,
    source_uri: str | None,
    provenance_key: str | None,
    trusted_root: str | None,
    tracking_uri: str | None,
    as_json: bool,
) -> None:
    """Verify MODEL VERSION end to end; only then sign the decision and set ALIAS.

    On failure the alias is untouched, the version is tagged provenance.verified=false with
    the reason, and the exit status is 1 (4 if MLflow is unreachable).

    \b
    Example:
      provenance promote digits 3 --alias champion --layout root.layout \\
          --layout-key keys/owner.pub --gate-key keys/gate
    """
    from provenance.errors import UsageError
    from provenance.gate import SlsaCheck
    from provenance.gate import promote as run_promote
    from provenance.signing import load_public_key, load_signer

    slsa = None
    if provenance_path:
        if not source_uri:
            raise UsageError("--provenance needs --source-uri")
        slsa = SlsaCheck(
            provenance_path,
            source_uri,
            load_public_key(provenance_key) if provenance_key else None,
            trusted_root,
        )
    result = run_promote(
        model,
        version,
        alias,
        layout=layout,
        layout_keys=[load_public_key(k) for k in layout_keys],
        gate_signer=load_signer(gate_key),
        links_dir=_config.links_dir(links_dir) if links_dir else None,
        artifact_path=artifact_path,
        slsa=slsa,
        tracking_uri=tracking_uri,
    )
    report(result.to_dict(), result.verdict, result.failures, as_json, result.promoted)


@click.command()
@click.argument("uri")
@click.argument("dest")
@click.option(
    "--gate-key",
    envvar="PROVENANCE_GATE_PUBLIC_KEY",
    help="Gate public key [env: PROVENANCE_GATE_PUBLIC_KEY].",
)
@tracking_option
@json_option
def fetch(
    uri: str, dest: str, gate_key: str | None, tracking_uri: str | None, as_json: bool
) -> None:
    """Download models:/NAME@ALIAS into DEST only if its files are the ones the gate verified.

    \b
    Example:
      provenance fetch models:/digits@champion ./serving --gate-key keys/gate.pub
    """
    from provenance._fs import check_output_dir
    from provenance.gate import load_verified

    check_output_dir(dest)
    loaded = load_verified(uri, dest, gate_key, tracking_uri=tracking_uri)
    if as_json:
        emit_json(
            {
                "model": loaded.name,
                "version": loaded.version,
                "alias": loaded.alias,
                "path": loaded.path,
                "files": loaded.files,
            }
        )
    else:
        say(f"VERIFIED: {uri} = version {loaded.version}, {len(loaded.files)} files in {dest}")


COMMANDS = [register, promote, fetch]
