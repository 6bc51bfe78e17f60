"""Missing, extra and changed files as Failures: the one wording for every phase that diffs.

The files phase (local files and object-store artifacts) and the model phase (a registered
version) all report a Manifest diff through here, so a change reads the same wherever found.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from provenance.hashing import Change
from provenance.verification.result import Failure

MAX_LISTED = 50


def _whose(change: Change, step: str) -> str:
    if change.expected is not None:
        return f" (product of step '{step}')"
    if step == "--artifact":
        return " (selected by --artifact)"
    return f" (under the products of step '{step}')" if step != "?" else ""


def failures_from_diff(
    changes: Sequence[Change], where: str, owner: Mapping[str, str] | None = None
) -> list[Failure]:
    """One Failure per changed file, each naming path, expected and actual (capped)."""
    owner = owner or {}
    failures = [
        Failure(
            "files",
            change.message(where)
            + (_whose(change, owner[change.path]) if change.path in owner else ""),
            step=owner[change.path]
            if owner.get(change.path, "?") not in ("?", "--artifact")
            else None,
            artifact=change.path,
            expected=change.expected or "absent",
            actual=change.actual or "missing",
        )
        for change in changes
    ]
    if len(failures) > MAX_LISTED:
        extra = len(failures) - MAX_LISTED
        failures = [*failures[:MAX_LISTED], Failure("files", f"... and {extra} more file problems")]
    return failures
