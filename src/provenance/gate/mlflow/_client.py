"""MLflow access for the gate: one client, errors mapped to the exit-code contract.

A missing model or version is invalid input (3); an unreachable server, a timeout or a 5xx is an
infrastructure failure (4). Retries are bounded so a stopped server fails in seconds, not minutes.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Iterator
from typing import Any

from provenance import _config
from provenance.errors import InfrastructureError, InputError, VerificationError


def client(tracking_uri: str | None = None) -> Any:
    """An MlflowClient for the registry at `tracking_uri`.

    Default: `tracking_uri` setting (MLFLOW_TRACKING_URI, then ``[tool.provenance]``); the HTTP
    retries are bounded unless the environment already bounds them.
    """
    _config.default_environment("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")
    _config.default_environment("MLFLOW_HTTP_REQUEST_BACKOFF_FACTOR", "1")
    _config.default_environment("MLFLOW_HTTP_REQUEST_TIMEOUT", "60")
    _config.default_environment("MLFLOW_DISABLE_TELEMETRY", "true")
    # MLflow draws tqdm bars on stderr whenever tqdm is installed (e.g. as gguf's dependency):
    # stderr carries our log and error lines only.
    _config.default_environment("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    from mlflow import MlflowClient

    uri = tracking_uri or _config.setting("tracking_uri", env="MLFLOW_TRACKING_URI")
    return MlflowClient(tracking_uri=uri, registry_uri=uri)


@contextlib.contextmanager
def mlflow_errors(what: str) -> Iterator[None]:
    """Translate MLflow/HTTP exceptions raised while doing `what`.

    MLflow prints progress ("View run ...") on stdout; it goes to stderr so that stdout stays one
    JSON document under --json.
    """
    from mlflow.exceptions import MlflowException

    try:
        with contextlib.redirect_stdout(sys.stderr):
            yield
    except MlflowException as exc:
        code = getattr(exc, "error_code", "")
        message = str(exc).splitlines()[0][:500]
        if code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            raise InputError(None, f"{what}: {message}") from None
        if code in ("PERMISSION_DENIED", "INVALID_STATE"):
            raise VerificationError(f"{what}: refused by the registry: {message}") from None
        raise InfrastructureError(
            f"{what}: {_unavailable(message) or 'MLflow failed: ' + message}"
        ) from None
    except (OSError, ConnectionError) as exc:
        raise InfrastructureError(f"{what}: {type(exc).__name__}: {exc}") from None
    except Exception as exc:
        # requests/urllib3 errors: connection refused, timeouts, retries exhausted.
        if type(exc).__module__.split(".")[0] in ("requests", "urllib3"):
            raise InfrastructureError(f"{what}: MLflow unreachable: {exc}") from None
        raise


def _unavailable(message: str) -> str | None:
    """What a 5xx the client retried until it gave up means.

    The answer's body (which names the cause) is gone, so say what the status means and where
    the cause is written down.
    """
    import re

    found = re.search(r"too many (50[0-9]) error responses", message)
    if found is None:
        return None
    return (
        f"MLflow unavailable: HTTP {found.group(1)} on every attempt (the tracking server, or "
        "PostgreSQL or the object store behind it, is down; the server's log names which)"
    )
