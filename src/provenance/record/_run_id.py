"""The pipeline run id: what ties the links of one run together, and where it comes from.

A run id is never inherited from an old run by accident. The `RunContext`s of
`provenance.record.context` are asked first (``PROVENANCE_RUN_ID``, an orchestrator, GitHub
Actions, the MLflow parent run); when none dictates one, the id kept in ``LINKS_DIR/RUN_ID`` is
used: ``provenance pipeline start`` opens a new one, and the first step in a fresh links
directory opens one when nobody did.
"""

from __future__ import annotations

import logging
import os
import uuid

from provenance import _config
from provenance._fs import write_atomic
from provenance.errors import InputError, UsageError
from provenance.links import RUN_ID_FILE, claimed_run_id, list_links
from provenance.record._mlflow_run import active_run_id
from provenance.record.context import RunId, dictated_run_id

log = logging.getLogger("provenance.record")

_MAX_ID = 200


def from_environment() -> RunId | None:
    """The run id an orchestrator dictates, or None when the workspace decides."""
    return dictated_run_id()


def _file(links_dir: str) -> str:
    return os.path.join(links_dir, RUN_ID_FILE)


def _read_file(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as f:
            value = f.read(_MAX_ID + 1).strip()
    except FileNotFoundError:
        return None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(path, f"cannot read the pipeline run id: {exc}") from None
    if not value or len(value) > _MAX_ID or not value.isprintable():
        raise InputError(path, "not a pipeline run id; run `provenance pipeline start`")
    return value


def start_run(links_dir: str) -> RunId:
    """Open a new run: a fresh id in `links_dir/RUN_ID`, unless the environment dictates one."""
    dictated = from_environment()
    if dictated:
        return dictated
    value = uuid.uuid4().hex
    write_atomic(_file(links_dir), (value + "\n").encode())
    return RunId(value, _file(links_dir))


def current_run(links_dir: str, step: str = "", *, root: str = ".") -> RunId:
    """The run a step belongs to; the first step in a fresh links directory opens one.

    With ``require_run_id`` set (jobs on separate machines), a step never opens a run itself:
    the id must come from the environment or `provenance pipeline start`.
    """
    dictated = from_environment()
    if dictated:
        return dictated
    path = _file(links_dir)
    existing = _read_file(path)
    if existing:
        return RunId(existing, path)
    if _config.flag("require_run_id", root=root):
        raise UsageError(
            f"step '{step}': no pipeline run id (require_run_id is set): pass the run's id in "
            "PROVENANCE_RUN_ID or run `provenance pipeline start` first"
        )
    value = uuid.uuid4().hex
    try:
        write_atomic(path, (value + "\n").encode(), overwrite=False)
    except FileExistsError:  # a parallel step opened it first: join that run
        return RunId(_read_file(path) or value, path)
    if active_run_id() is not None:
        # Links go to a shared server: another job would silently record a run of its own.
        log.warning(
            "step '%s' opened a new pipeline run %s; steps in other jobs join it only with "
            "PROVENANCE_RUN_ID=%s",
            step,
            value,
            value,
        )
    else:
        log.info("opened pipeline run %s in %s", value, path)
    return RunId(value, path)


def links_of_other_runs(links_dir: str, run_id: str, own: str | None = None) -> list[str]:
    """`name (run X)` for each link in `links_dir` that does not belong to `run_id`.

    `own` is the file this step is about to replace; it is not reported.
    """
    try:
        paths = [p for p in list_links(links_dir) if os.path.basename(p) != own]
    except InputError:
        return []
    others = []
    for path in paths:
        name = os.path.basename(path)
        claimed = claimed_run_id(path)
        if claimed != run_id:
            others.append(f"{name} (run {claimed or 'unknown'})")
    return others


def warn_about_other_runs(links_dir: str, run: RunId, step: str, own: str | None = None) -> None:
    """Warn when this step's links directory holds links that will not verify with its run.

    Links of another run are named. The step's own link already recorded in this run means the
    pipeline is being run again under an old id (a `RUN_ID` left from an earlier run).
    """
    others = links_of_other_runs(links_dir, run.value, own)
    if others:
        log.warning(
            "step '%s': %d link(s) in %s belong to another run than %s and will not verify "
            "with it: %s",
            step,
            len(others),
            links_dir,
            run.value,
            ", ".join(others),
        )
    own_path = os.path.join(links_dir, own) if own else ""
    if (
        own
        and run.source == _file(links_dir)
        and os.path.exists(own_path)
        and claimed_run_id(own_path) == run.value
    ):
        log.warning(
            "step '%s' was already recorded in run %s (%s); if this is a new pipeline run, "
            "run `provenance pipeline start` before its first step",
            step,
            run.value,
            own,
        )
