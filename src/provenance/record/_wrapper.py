"""`provenance run`: record any command as an in-toto step."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Sequence

from provenance.errors import StepFailedError, UsageError
from provenance.record import _ranks
from provenance.record._recorder import StepSpec, base_dir, discard, prepare

log = logging.getLogger("provenance")


def run_step(spec: StepSpec, argv: Sequence[str]) -> str | None:
    """Hash materials, run `argv` (no timeout; output streams through), hash products, sign.

    Returns the link path, or None on a rank of a distributed job that does not record (the
    command still runs). A non-zero exit raises StepFailedError carrying the exit status.
    """
    if not argv:
        raise UsageError("no command given after '--'")
    base = base_dir(spec)
    ranks = _ranks.current(spec.name, root=base)
    if ranks is not None and not ranks.records:
        log.info("%s", _ranks.skip_message(spec.name, ranks))
        _run(spec, argv, base)
        return None
    recording = prepare(spec, ranks)
    try:
        _run(spec, argv, recording.base)
    except BaseException:
        discard(recording)
        raise
    return recording.finish(list(argv), {"return-value": 0})


def _run(spec: StepSpec, argv: Sequence[str], cwd: str) -> None:
    try:
        proc = subprocess.run(list(argv), cwd=cwd, check=False)
    except FileNotFoundError:
        raise UsageError(f"command not found: {argv[0]}") from None
    except PermissionError:
        raise UsageError(f"command not executable: {argv[0]}") from None
    if proc.returncode != 0:
        raise StepFailedError(spec.name, proc.returncode)
