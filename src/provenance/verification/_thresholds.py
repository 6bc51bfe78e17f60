"""Phase `thresholds`: the metrics a signed layout requires, read from the verified products.

A metrics file counts only if its sha256 equals the digest the declared step recorded for it,
so the numbers compared are the ones the signed chain vouches for (a file edited after
`evaluate` ran is refused by name). Files are bounded (1 MiB) and parsed strictly: JSON numbers
only, booleans and strings are not numbers, NaN/Infinity and out-of-range numbers are refused.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from provenance._fs import load_json_bounded, read_bounded
from provenance.errors import InputError
from provenance.verification.result import Failure

if TYPE_CHECKING:
    from provenance.layout import Threshold
    from provenance.links import LinkData

MAX_METRICS_BYTES = 1 << 20
MAX_METRICS_DEPTH = 32
PHASE = "thresholds"

Evidence = str | Mapping[str, str]
"""Where metrics files are: a directory (the project root, or downloaded evidence), or a
mapping of recorded path -> local file."""


def evidence_path(evidence: Evidence, file: str) -> str | None:
    """The local file holding recorded product `file`, or None when the evidence lacks it."""
    if isinstance(evidence, str):
        return os.path.join(evidence, *file.split("/"))
    return evidence.get(file)


def load_metrics(path: str, file: str, sha256: str) -> tuple[Any, Failure | None]:
    """The parsed metrics file at `path` if its bytes are exactly the recorded product `file`."""
    try:
        data = read_bounded(path, MAX_METRICS_BYTES, "metrics file")
    except InputError as exc:
        return None, Failure(PHASE, f"metrics file '{file}': {exc}", artifact=file)
    actual = hashlib.sha256(data).hexdigest()
    if actual != sha256:
        return None, Failure(
            PHASE,
            f"metrics file '{file}' is not the one the chain recorded: sha256 mismatch "
            f"(expected {sha256}, actual {actual})",
            artifact=file,
            expected=sha256,
            actual=actual,
        )
    try:
        doc = load_json_bounded(data, file, what="metrics file", max_depth=MAX_METRICS_DEPTH)
    except InputError as exc:
        return None, Failure(PHASE, str(exc), artifact=file)
    if not isinstance(doc, dict):
        return None, Failure(PHASE, f"{file}: metrics file must hold a JSON object", artifact=file)
    return doc, None


def metric_value(doc: Mapping[str, Any], metric: str) -> Any:
    """The value at dotted path `metric` (`eval.accuracy`); KeyError when absent."""
    value: Any = doc
    for part in metric.split("."):
        if not isinstance(value, dict) or part not in value:
            raise KeyError(metric)
        value = value[part]
    return value


def is_number(value: Any) -> bool:
    """A JSON number: int or float, never a boolean (bool is an int subclass in Python)."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _shown(value: Any) -> str:
    """A JSON value as it appears in the file, cut short for a message."""
    import json

    text = json.dumps(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _kind(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if value is None:
        return "null"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def check_thresholds(
    thresholds: Sequence[Threshold],
    links: Mapping[str, LinkData],
    evidence: Evidence,
    where: str,
) -> tuple[list[dict[str, Any]], list[Failure]]:
    """Check every threshold; return the values compared and the failures.

    `where` names the evidence in messages ("the base directory .", "the evidence of run X").
    """
    checked: list[dict[str, Any]] = []
    failures: list[Failure] = []
    files: dict[tuple[str, str], list[Threshold]] = {}
    for t in thresholds:
        files.setdefault((t.step, t.file), []).append(t)
    for (step, file), required in files.items():
        link = links.get(step)
        digest = (link.products.get(file) or {}).get("sha256") if link is not None else None
        if digest is None:
            failures.append(
                Failure(
                    PHASE,
                    f"step '{step}' recorded no product '{file}', so its thresholds cannot be "
                    "checked",
                    step=step,
                    artifact=file,
                )
            )
            continue
        path = evidence_path(evidence, file)
        if path is None or not os.path.lexists(path):
            failures.append(
                Failure(
                    PHASE,
                    f"metrics file '{file}' (a product of step '{step}') is missing from {where}",
                    step=step,
                    artifact=file,
                )
            )
            continue
        doc, failure = load_metrics(path, file, digest)
        if failure is not None:
            failures.append(dataclasses.replace(failure, step=step))
            continue
        for t in required:
            entry, failure = _check_one(t, doc)
            if entry is not None:
                checked.append(entry)
            if failure is not None:
                failures.append(failure)
    return checked, failures


def _check_one(
    t: Threshold, doc: Mapping[str, Any]
) -> tuple[dict[str, Any] | None, Failure | None]:
    def fail(message: str, actual: str | None = None) -> Failure:
        return Failure(
            PHASE,
            message,
            step=t.step,
            rule=str(t),
            artifact=t.file,
            expected=f"{t.op} {t.value}",
            actual=actual,
        )

    try:
        value = metric_value(doc, t.metric)
    except KeyError:
        return None, fail(f"metric '{t.metric}' is missing from {t.file} (required {t})")
    if not is_number(value):
        return None, fail(
            f"metric '{t.metric}' in {t.file} is {_kind(value)} ({_shown(value)}), not a number "
            f"(required {t})",
            _shown(value),
        )
    entry = {**t.to_dict(), "actual": value, "met": t.holds(value)}
    if entry["met"]:
        return entry, None
    return entry, fail(
        f"metric '{t.metric}' = {value} in {t.file} does not meet {t.op} {t.value}", str(value)
    )
