"""Client-side probes of the servers a deployment uses: MLflow, the S3 bucket, PostgreSQL.

Each probe makes one small authenticated request and turns every failure into a
ComponentError whose message names the component, the address and the cause in one line
(unreachable, wrong credentials, bucket missing, connection refused), so a misconfigured
command stops with exit 4 and that line instead of a traceback from deep inside a client.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass

from provenance.errors import ComponentError

TIMEOUT = 5.0


def _first_line(text: object) -> str:
    lines = str(text).strip().splitlines()
    return lines[0].strip() if lines else type(text).__name__


def check_mlflow(uri: str, username: str | None, password: str | None) -> None:
    """The tracking server answers and accepts the credentials (a registry read)."""
    from provenance.stack._mlflow import _request

    name = "mlflow"
    try:
        status, _ = _request(f"{uri.rstrip('/')}/health", None, None)
    except OSError as exc:
        reason = getattr(exc, "reason", exc)
        raise ComponentError(name, f"{uri} unreachable ({_first_line(reason)})") from None
    if status != 200:
        raise ComponentError(name, f"{uri} is not healthy (HTTP {status} on /health)")
    url = f"{uri.rstrip('/')}/api/2.0/mlflow/registered-models/search?max_results=1"
    try:
        status, body = _request(url, username, password)
    except OSError as exc:
        raise ComponentError(name, f"{uri} unreachable ({_first_line(exc)})") from None
    who = f"user '{username}'" if username else "anonymous requests"
    if status == 401:
        raise ComponentError(
            name,
            f"{uri} refused the credentials of {who} (HTTP 401: wrong "
            "MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD)",
        )
    if status == 403:
        raise ComponentError(name, f"{uri}: {who} may not read the model registry (HTTP 403)")
    if status != 200:
        detail = _first_line(body.decode(errors="replace"))[:200]
        raise ComponentError(name, f"{uri} answered HTTP {status} to a registry read: {detail}")


def check_s3(
    endpoint: str | None, bucket: str, access_key: str | None, secret_key: str | None
) -> None:
    """The bucket exists and the credentials may list it."""
    from botocore.exceptions import BotoCoreError, ClientError

    from provenance.stack._s3 import client

    name = "s3"
    where = endpoint or "AWS S3"
    if not access_key or not secret_key:
        raise ComponentError(name, "no credentials (AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)")
    s3 = client(endpoint, access_key, secret_key, timeout=TIMEOUT) if endpoint else None
    if s3 is None:
        import boto3

        s3 = boto3.client("s3", aws_access_key_id=access_key, aws_secret_access_key=secret_key)
    try:
        s3.list_objects_v2(Bucket=bucket, MaxKeys=1)
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        if code in ("NoSuchBucket", "404"):
            raise ComponentError(name, f"bucket '{bucket}' does not exist at {where}") from None
        if code in ("SignatureDoesNotMatch", "InvalidAccessKeyId", "InvalidClientTokenId"):
            raise ComponentError(
                name,
                f"{where} refused the credentials of access key {access_key} ({code}: wrong "
                "AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY)",
            ) from None
        if code in ("AccessDenied", "403"):
            raise ComponentError(
                name,
                f"access key {access_key} may not list bucket '{bucket}' at {where} (the "
                "bucket does not exist or the key has no access to it)",
            ) from None
        raise ComponentError(name, f"{where}: {code or 'error'} on bucket '{bucket}'") from None
    except BotoCoreError as exc:
        raise ComponentError(name, f"{where} unreachable ({_first_line(exc)})") from None


def check_postgres(uri: str) -> None:
    """The database accepts a connection with the URI's credentials."""
    import psycopg

    name = "postgresql"
    parsed = urllib.parse.urlsplit(uri)
    scheme = parsed.scheme.split("+", 1)[0].removeprefix("provenance-")
    if scheme not in ("postgresql", "postgres"):
        raise ComponentError(name, f"not a PostgreSQL URI: {parsed.scheme}://…")
    dsn = urllib.parse.urlunsplit(("postgresql", parsed.netloc, parsed.path, parsed.query, ""))
    where = f"{parsed.hostname or 'localhost'}:{parsed.port or 5432}{parsed.path}"
    try:
        conn = psycopg.connect(dsn, connect_timeout=int(TIMEOUT))
    except psycopg.OperationalError as exc:
        text = str(exc)
        if "password authentication failed" in text:
            why = f"wrong password for user '{parsed.username}'"
        elif "Connection refused" in text:
            why = "connection refused (is the server running?)"
        elif "does not exist" in text:
            why = _first_line(text).removeprefix("FATAL:").strip()
        else:
            why = _first_line(text.replace("\n", " "))
        raise ComponentError(name, f"{where}: {why}") from None
    conn.close()


@dataclass(frozen=True)
class Target:
    """What to probe; a None address skips that component."""

    tracking_uri: str | None = None
    username: str | None = None
    password: str | None = None
    s3_endpoint: str | None = None
    bucket: str | None = None
    access_key: str | None = None
    secret_key: str | None = None
    backend_store_uri: str | None = None


def check(target: Target) -> dict[str, str | None]:
    """Probe every configured component; a map component -> None (ok) or the one-line error."""
    results: dict[str, str | None] = {}
    probes: list[tuple[str, Callable[[], None]]] = []
    if target.backend_store_uri:
        probes.append(("postgresql", lambda: check_postgres(target.backend_store_uri or "")))
    if target.bucket:
        probes.append(
            (
                "s3",
                lambda: check_s3(
                    target.s3_endpoint, target.bucket or "", target.access_key, target.secret_key
                ),
            )
        )
    if target.tracking_uri:
        probes.append(
            (
                "mlflow",
                lambda: check_mlflow(target.tracking_uri or "", target.username, target.password),
            )
        )
    for name, probe in probes:
        try:
            probe()
            results[name] = None
        except ComponentError as exc:
            results[name] = str(exc)
    return results
