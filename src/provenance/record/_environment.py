"""What a link records about where it was made: run id, git state, Python, platform, packages."""

from __future__ import annotations

import hashlib
import platform
import subprocess
from functools import lru_cache
from typing import Any

from provenance.record._mlflow_run import active_run_id


def _git(base: str, *args: str) -> subprocess.Popen[str] | None:
    try:
        return subprocess.Popen(
            # No fsmonitor: a repository's config must not run a command in the recorder.
            ["git", "-c", "core.fsmonitor=false", *args],
            cwd=base,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None


def _answer(proc: subprocess.Popen[str] | None) -> str | None:
    if proc is None:
        return None
    try:
        out, _ = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return None
    return out.strip() if proc.returncode == 0 else None


def git_state(base: str) -> dict[str, Any]:
    """The commit checked out at `base` and whether tracked files differ from it (None: no git)."""
    # Both questions at once: on a large working tree `git status` is the slow one.
    head = _git(base, "rev-parse", "HEAD")
    status = _git(base, "status", "--porcelain", "--untracked-files=no")
    commit, changes = _answer(head), _answer(status)
    if commit is None:
        return {"commit": None, "dirty": None}
    return {"commit": commit, "dirty": bool(changes) if changes is not None else None}


@lru_cache(maxsize=1)
def installed_packages() -> tuple[str, ...]:
    """The sorted `name==version` lines of the installed distributions (the ML-BOM's packages)."""
    from importlib.metadata import distributions

    return tuple(sorted({_name_version(d) for d in distributions()}))


def _name_version(dist: Any) -> str:
    """`name==version` as `dist.metadata` gives them, read from the plain header lines.

    The email parser behind `dist.metadata` costs ~1 ms per distribution, most of a step's
    fixed start-up; anything unusual in the headers (folded lines, a line that is no header)
    takes that slow path, so the result is the same.
    """
    text = dist.read_text("METADATA") or dist.read_text("PKG-INFO") or dist.read_text("") or ""
    found: dict[str, str] = {}
    lines = text.split("\n")
    for i, line in enumerate(lines):
        if not line.rstrip("\r"):
            break  # end of the headers
        key, sep, value = line.partition(":")
        if not sep or line[:1] in (" ", "\t"):
            found.clear()  # not a plain header: let the email parser decide
            break
        name = key.lower()
        if name in ("name", "version") and name not in found:
            if i + 1 < len(lines) and lines[i + 1][:1] in (" ", "\t"):
                found.clear()  # folded value
                break
            found[name] = value.lstrip(" \t").rstrip("\r")
        if len(found) == 2:
            return f"{found['name'].lower()}=={found['version']}"
    return f"{(dist.metadata['Name'] or '').lower()}=={dist.version}"


def warm() -> None:
    """Find out ahead what `capture` reads that is slow to find out (a recorder's thread).

    `platform.platform()` is cached by `platform`; on Linux it runs `uname -p` the first time.
    """
    installed_packages()
    platform.platform()


@lru_cache(maxsize=1)
def packages_digest() -> str:
    """sha256 over the sorted `name==version` lines of the installed distributions."""
    return hashlib.sha256("\n".join(installed_packages()).encode()).hexdigest()


def mlflow_run_id() -> str | None:
    """The active MLflow run, only if the program already uses mlflow (never imported here)."""
    return active_run_id()


def capture(run_id: str, git: dict[str, Any]) -> dict[str, Any]:
    """The environment block of a link (`run_id` from `record.context`, `git` from `git_state`).

    Called on the step's own thread: the active MLflow run is per thread (`git_state` may run
    on another meanwhile).
    """
    return {
        "pipeline_run_id": run_id,
        "git_commit": git["commit"],
        "git_dirty": git["dirty"],
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "packages_sha256": packages_digest(),
        "packages": list(installed_packages()),
        "mlflow_run_id": mlflow_run_id(),
    }
