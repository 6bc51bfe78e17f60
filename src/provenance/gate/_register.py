"""`register`: plain model files (no framework flavor) become a new version in a registry.

Inputs are checked here, before the registry is touched, so a bad argument never leaves a
half-registered version; the registry (`Registry.create_version`) stores the files, the links
and the evidence where `promote` reads them back.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Sequence

from provenance.errors import UsageError
from provenance.gate.registry import Registered, Registry, open_registry
from provenance.hashing import is_safe_relative


def register(
    name: str,
    path: str,
    *,
    links_dir: str | None = None,
    run_id: str | None = None,
    evidence: Sequence[str] = (),
    registry: Registry | None = None,
    tracking_uri: str | None = None,
) -> Registered:
    """Register the files in `path` as a new version of model `name`.

    Args:
        name: The registered model (created when missing).
        path: The directory of model files.
        links_dir: Links stored with the version's run, for `promote`.
        run_id: Store into this existing run instead of a new one.
        evidence: Other steps' products (e.g. ``metrics/metrics.json``, paths relative to the
            project root, as the links record them) stored for the layout's thresholds.
        registry: The registry; default the MLflow registry at `tracking_uri`.
        tracking_uri: Where the default registry is (default MLFLOW_TRACKING_URI).

    Raises:
        UsageError: `path` is not a directory, or an evidence file is not a regular file inside
            the current directory.
        InfrastructureError: The registry cannot be reached.
    """
    if not os.path.isdir(path):
        raise UsageError(f"{path} is not a directory of model files")
    recorded = {_evidence_path(e): e for e in evidence}
    registry = open_registry(registry, tracking_uri)
    return registry.create_version(
        name, path, links_dir=links_dir, evidence=recorded, run_id=run_id
    )


def _evidence_path(local: str) -> str:
    """The recorded (project-relative POSIX) path of evidence file `local`."""
    try:
        mode = os.stat(local).st_mode
    except OSError as exc:
        raise UsageError(f"--evidence {local}: {exc.strerror}") from None
    if not stat.S_ISREG(mode):
        raise UsageError(f"--evidence {local}: not a regular file")
    rel = os.path.relpath(os.path.abspath(local)).replace(os.sep, "/")
    if not is_safe_relative(rel):
        raise UsageError(
            f"--evidence {local}: must be inside the current directory (the project root), "
            "where the links record it"
        )
    return rel
