"""`provenance run`: record any command as an in-toto step."""

from __future__ import annotations

import subprocess
from collections.abc import Sequence

from provenance.errors import StepFailedError, UsageError
from provenance.record._recorder import StepSpec, prepare


def run_step(spec: StepSpec, argv: Sequence[str]) -> str:
    """Hash materials, run `argv` (no timeout; output streams through), hash products, sign.

    Returns the link path. A non-zero exit raises StepFailedError carrying the exit status.
    """
    if not argv:
        raise UsageError("no command given after '--'")
    recording = prepare(spec)
    try:
        proc = subprocess.run(list(argv), cwd=recording.base, check=False)
    except FileNotFoundError:
        raise UsageError(f"command not found: {argv[0]}") from None
    except PermissionError:
        raise UsageError(f"command not executable: {argv[0]}") from None
    if proc.returncode != 0:
        raise StepFailedError(spec.name, proc.returncode)
    return recording.finish(list(argv), {"return-value": proc.returncode})
