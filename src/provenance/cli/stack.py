"""`provenance stack up|status|down|check`: the local production-like MLflow stack."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click

from provenance import _config
from provenance.cli._common import emit_json, json_option, say, warn

dir_option = click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Stack directory (data, logs, secrets).  [default: $PROVENANCE_STACK_DIR or "
    ".provenance-stack]",
)


def _dir(directory: Path | None) -> Path:
    from provenance.stack import default_dir

    return directory or default_dir()


@click.group()
def stack() -> None:
    """A local MLflow on PostgreSQL and S3, with basic auth and the gate's registry plugin.

    \b
    Everything listens on 127.0.0.1 (free ports) and lives under --dir:
      postgresql  the pgserver wheel's server (or a system PostgreSQL)
      s3          SeaweedFS `weed server -s3`, bucket `mlflow`
      mlflow      `mlflow server`, 2 workers, users provenance-gate and engineer
    \b
    Example:
      provenance stack up --json > stack.json
      provenance stack status
      provenance stack down
    """


@stack.command()
@dir_option
@click.option(
    "--gate-pub-key",
    type=click.Path(dir_okay=False),
    default=None,
    help="Public key of the gate for the registry plugin (default: a key pair made in DIR/gate).",
)
@json_option
def up(directory: Path | None, gate_pub_key: str | None, as_json: bool) -> None:
    """Start the stack, or do nothing if it runs (exit 4 naming a component that fails).

    Refuses (exit 2) a directory it did not create. `--json` prints the URIs, the client
    environments (`env` for the gate's account, `engineer_env`), PIDs and ports.

    \b
    Example:
      provenance stack up --dir .provenance-stack --json > stack.json
    """
    from provenance.stack import document
    from provenance.stack import up as start

    state, timing = start(_dir(directory), gate_pub_key)
    doc = document(state, timing)
    if as_json:
        emit_json(doc)
        return
    say(f"stack up in {doc['stack_dir']}")
    say(f"  tracking_uri   {doc['tracking_uri']}")
    say(f"  backend store  {doc['backend_store_uri']}")
    say(f"  artifacts      {doc['artifacts_destination']} at {doc['s3_endpoint']}")
    say(f"  gate key       {doc['gate_public_key']}")
    for name, seconds in timing.seconds.items():
        say(f"  {name:<13}  pid {doc['pids'][name]}  ready in {seconds:.1f} s")
    say("client environment: `provenance stack up --json` (keys env / engineer_env)")


@stack.command()
@dir_option
@json_option
def status(directory: Path | None, as_json: bool) -> None:
    """Say whether each component is running, crashed or stopped.

    Exit 0 when every component runs, 1 when any is crashed or stopped.

    \b
    Example:
      provenance stack status --json
    """
    from provenance.stack import RUNNING, document
    from provenance.stack import status as load

    doc = document(load(_dir(directory)))
    states: dict[str, str] = doc["components"]
    ok = all(s == RUNNING for s in states.values())
    if as_json:
        emit_json({"ok": ok, **doc})
    else:
        for name, state in states.items():
            pid = doc["pids"][name]
            say(f"{name:<11} {state}" + (f" (pid {pid})" if pid else ""))
    if not ok:
        raise click.exceptions.Exit(1)


@stack.command()
@dir_option
def down(directory: Path | None) -> None:
    """Stop exactly the processes the stack started; the data stays in DIR.

    \b
    Example:
      provenance stack down --dir .provenance-stack
    """
    from provenance.stack import down as stop

    result = stop(_dir(directory))
    for name, state in result.items():
        say(f"{name:<11} {state}")


@stack.command()
@click.option(
    "--dir",
    "directory",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Probe this local stack (with the gate's credentials) instead of the environment's.",
)
@click.option(
    "--tracking-uri",
    default=_config.default("tracking_uri", env="MLFLOW_TRACKING_URI"),
    help="[env: MLFLOW_TRACKING_URI]",
)
@click.option(
    "--s3-endpoint",
    default=_config.default("s3_endpoint", env="MLFLOW_S3_ENDPOINT_URL"),
    help="[env: MLFLOW_S3_ENDPOINT_URL]",
)
@click.option("--bucket", default=_config.default("s3_bucket"), help="[env: PROVENANCE_S3_BUCKET]")
@click.option(
    "--backend-store-uri",
    default=_config.default("backend_store_uri", env="MLFLOW_BACKEND_STORE_URI"),
    help="PostgreSQL URI of the registry database.  [env: MLFLOW_BACKEND_STORE_URI]",
)
@json_option
def check(
    directory: Path | None,
    tracking_uri: str | None,
    s3_endpoint: str | None,
    bucket: str | None,
    backend_store_uri: str | None,
    as_json: bool,
) -> None:
    """Probe MLflow, the S3 bucket and PostgreSQL with the configured credentials.

    Credentials come from the environment (MLFLOW_TRACKING_USERNAME/PASSWORD,
    AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY). A component without an address is skipped. Exit 4
    with one line per failing component (wrong credentials, bucket missing, unreachable).

    \b
    Example:
      provenance stack check --bucket ml-data --backend-store-uri "$MLFLOW_BACKEND_STORE_URI"
    """
    from provenance.errors import UsageError
    from provenance.stack import Target, target_for
    from provenance.stack import check as probe
    from provenance.stack import status as load

    if directory is not None:
        target = target_for(load(directory))
    else:
        env = _config.environment  # credentials: from the environment only
        target = Target(
            tracking_uri=tracking_uri,
            username=env("MLFLOW_TRACKING_USERNAME"),
            password=env("MLFLOW_TRACKING_PASSWORD"),
            s3_endpoint=s3_endpoint,
            bucket=bucket,
            access_key=env("AWS_ACCESS_KEY_ID"),
            secret_key=env("AWS_SECRET_ACCESS_KEY"),
            backend_store_uri=backend_store_uri,
        )
    if not (target.tracking_uri or target.bucket or target.backend_store_uri):
        raise UsageError(
            "nothing to check: give --dir, or --tracking-uri / --bucket / --backend-store-uri "
            "(or their environment variables)"
        )
    results = probe(target)
    ok = all(error is None for error in results.values())
    if as_json:
        doc: dict[str, Any] = {
            "ok": ok,
            "components": {n: {"ok": e is None, "error": e} for n, e in results.items()},
        }
        emit_json(doc)
    else:
        for name, error in results.items():
            if error is None:
                say(f"{name:<11} ok")
            else:
                warn(f"error: {error}")
    if not ok:
        raise click.exceptions.Exit(4)


COMMANDS = [stack]
