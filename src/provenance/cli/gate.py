"""`provenance register|promote|revoke|fetch`: the MLflow promotion gate."""

from __future__ import annotations

import click

from provenance import _config
from provenance.cli._common import emit_json, guard_output, json_option, report, say

tracking_option = click.option(
    "--tracking-uri",
    default=_config.default("tracking_uri", env="MLFLOW_TRACKING_URI"),
    help="MLflow tracking URI [env: MLFLOW_TRACKING_URI].",
)


@click.command()
@click.argument("model")
@click.argument("path")
@click.option("--links", "links_dir", help="Also log these links with the version's run.")
@click.option(
    "--evidence",
    multiple=True,
    metavar="FILE",
    help="Also log this product of another step (e.g. metrics/metrics.json, path relative to "
    "the project root) for the layout's thresholds (repeatable).",
)
@click.option("--run-id", help="Log into this existing run instead of a new one.")
@tracking_option
@json_option
def register(
    model: str,
    path: str,
    links_dir: str | None,
    evidence: tuple[str, ...],
    run_id: str | None,
    tracking_uri: str | None,
    as_json: bool,
) -> None:
    """Register the files in PATH as a new version of MODEL (plain files, no flavor).

    \b
    Example:
      provenance register digits models --links .provenance/links \\
          --evidence metrics/metrics.json
    """
    from provenance.gate import register as run_register

    reg = run_register(
        model,
        path,
        links_dir=links_dir,
        run_id=run_id,
        tracking_uri=tracking_uri,
        evidence=evidence,
    )
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
    default=_config.default("gate_key"),
    help="Gate private key or signer URI [env: PROVENANCE_GATE_KEY].",
)
@click.option("--pub-key", help="Public key of a signer-URI gate key (e.g. a KMS key).")
@click.option(
    "--links", "links_dir", help="Links directory [default: the version's run artifacts]."
)
@click.option(
    "--evidence",
    "evidence_dir",
    metavar="DIR",
    help="Metrics files for the layout's thresholds, by recorded path (e.g. DIR/metrics/"
    "metrics.json) [default: the evidence logged with the version's run].",
)
@click.option("--provenance", "provenance_path", help="SLSA provenance to check as well.")
@click.option("--source-uri", help="Expected source for the SLSA check.")
@click.option("--provenance-key", help="Public key of key-signed SLSA provenance.")
@click.option("--trusted-root", help="Sigstore trusted root for the SLSA check.")
@click.option(
    "--allow-pickle",
    "scan_allow",
    multiple=True,
    metavar="FILE",
    help="A pickle-based model file (path in the version) the scan accepts (repeatable).",
)
@click.option(
    "--vsa-output",
    help="Also write the decision's SLSA VSA here (.intoto.jsonl, for slsa-verifier verify-vsa).",
)
@tracking_option
@json_option
def promote(
    model: str,
    version: str,
    alias: str,
    layout: str,
    layout_keys: tuple[str, ...],
    gate_key: str,
    pub_key: str | None,
    links_dir: str | None,
    evidence_dir: str | None,
    provenance_path: str | None,
    source_uri: str | None,
    provenance_key: str | None,
    trusted_root: str | None,
    scan_allow: tuple[str, ...],
    vsa_output: str | None,
    tracking_uri: str | None,
    as_json: bool,
) -> None:
    """Verify MODEL VERSION end to end; only then sign the decision and set ALIAS.

    The registered files must be exactly the model the signed layout declares (`model:`), and
    pass the model scan (no pickle-based or malformed files unless allowed), and the metrics
    the layout's thresholds name must meet them (read from --evidence or the evidence logged
    by `register --evidence`; a missing file refuses). The decision is
    recorded as a signed record and a SLSA VSA (printed under "vsa" with --json).
    Passed or failed, the gate's signed decision for ALIAS is recorded on the version; on
    failure the alias is untouched and the exit status is 1 (4 if MLflow is unreachable).

    \b
    Example:
      provenance promote digits 3 --alias champion --layout root.layout \\
          --layout-key keys/owner.pub --gate-key keys/gate
    """
    from provenance.errors import UsageError
    from provenance.gate import SlsaCheck
    from provenance.gate import promote as run_promote
    from provenance.signing import load_public_key, load_signer

    if vsa_output:  # before any work: never over an input or a key
        guard_output(vsa_output, [layout, provenance_path, trusted_root], [gate_key, *layout_keys])
    checks = []
    if provenance_path:
        if not source_uri:
            raise UsageError("--provenance needs --source-uri")
        checks.append(
            SlsaCheck(
                provenance_path,
                source_uri,
                load_public_key(provenance_key) if provenance_key else None,
                trusted_root,
            )
        )
    result = run_promote(
        model,
        version,
        alias,
        layout=layout,
        layout_keys=[load_public_key(k) for k in layout_keys],
        gate_signer=load_signer(gate_key, pub_key),
        links_dir=_config.links_dir(links_dir) if links_dir else None,
        attestations=checks,
        scan_allow=scan_allow,
        tracking_uri=tracking_uri,
        evidence_dir=evidence_dir,
    )
    if vsa_output and result.vsa is not None:
        from provenance._fs import canonical_json, write_atomic

        write_atomic(vsa_output, canonical_json(result.vsa) + b"\n")
    report(result, as_json)


@click.command()
@click.argument("model")
@click.argument("version")
@click.option("--reason", required=True, help="Why the version is revoked (recorded, signed).")
@click.option(
    "--gate-key",
    required=True,
    default=_config.default("gate_key"),
    help="Gate private key or signer URI [env: PROVENANCE_GATE_KEY].",
)
@click.option("--pub-key", help="Public key of a signer-URI gate key (e.g. a KMS key).")
@tracking_option
@json_option
def revoke(
    model: str,
    version: str,
    reason: str,
    gate_key: str,
    pub_key: str | None,
    tracking_uri: str | None,
    as_json: bool,
) -> None:
    """Revoke MODEL VERSION: it can hold no protected alias any more and `fetch` refuses it.

    The gate-signed revocation is recorded on the version, and aliases that pointed at it on
    the strength of a gate decision are removed.

    \b
    Example:
      provenance revoke digits 3 --reason "trained on leaked data" --gate-key keys/gate
    """
    from provenance.gate import revoke as run_revoke
    from provenance.signing import load_signer

    record = run_revoke(
        model,
        version,
        gate_signer=load_signer(gate_key, pub_key),
        reason=reason,
        tracking_uri=tracking_uri,
    )
    if as_json:
        emit_json(record.to_dict())
    else:
        say(f"REVOKED: {model} version {version} on {record.revoked_at}: {record.reason}")


@click.command()
@click.argument("uri")
@click.argument("dest")
@click.option(
    "--gate-pub-key",
    "--gate-key",
    "gate_key",
    default=lambda: _config.environment("PROVENANCE_GATE_PUBLIC_KEY") or None,
    help="Gate public key [env: PROVENANCE_GATE_PUBLIC_KEY; never read from pyproject.toml].",
)
@click.option("--force", is_flag=True, help="Replace DEST if it exists and is not empty.")
@tracking_option
@json_option
def fetch(
    uri: str,
    dest: str,
    gate_key: str | None,
    force: bool,
    tracking_uri: str | None,
    as_json: bool,
) -> None:
    """Download models:/NAME@ALIAS into DEST only if its files are the ones the gate verified.

    The gate's decision for the alias must verify and have passed, the version must not be
    revoked, and the downloaded files must hash to the signed digest; otherwise nothing is
    written to DEST.

    \b
    Example:
      provenance fetch models:/digits@champion ./serving --gate-pub-key keys/gate.pub
    """
    from provenance.gate import load_verified

    loaded = load_verified(uri, dest, gate_key, force=force, tracking_uri=tracking_uri)
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


COMMANDS = [register, promote, revoke, fetch]
