"""Phases 3-5: find each step's links, check who signed them, thresholds, run id and paths.

Links are read from untrusted storage, so: the signature is verified before the payload is
parsed, the payload is validated field by field, and every artifact path must stay relative.
"""

from __future__ import annotations

import itertools
import os
import re
from collections import Counter
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from provenance.hashing import objects
from provenance.links import (
    FILE_RE,
    LinkData,
    LinkReader,
    Rejected,
    VerifiedLink,
    link_filename,
    step_links,
)
from provenance.signing import key_material
from provenance.verification.result import Failure, StepReport


def _label(keyid: str, names: dict[str, str]) -> str:
    name = names.get(keyid)
    return f"{name} ({keyid[:8]})" if name else keyid[:8]


def _why_rejected(got: Rejected, allowed: dict[str, Any], names: dict[str, str]) -> str:
    claimed = [k for k in got.keyids if k in allowed]
    if claimed:
        return (
            f"the signature by {_label(claimed[0], names)} does not verify: the link was "
            "changed after it was signed"
        )
    if got.signed_by:
        return (
            f"signed by {_label(got.signed_by[0], names)}, which is not allowed to sign this step"
        )
    claimed_ids = ", ".join(k[:8] for k in got.keyids) or "(no signature)"
    return (
        f"signed by unknown key {claimed_ids}, which is not allowed to sign this step "
        "(the key is not in the layout: a foreign key, or an old key rotated out)"
    )


def stray_links(layout: Any, links_dir: str) -> list[dict[str, str]]:
    """Files in `links_dir` that no step of the layout reads, and why (for explanations)."""
    steps = {s.name for s in layout.steps}
    try:
        names = sorted(os.listdir(links_dir))
    except OSError:
        return []
    out: list[dict[str, str]] = []
    for name in names:
        m = FILE_RE.match(name)
        if m and m["step"] not in steps:
            reason = f"names step '{m['step']}', which the layout does not have"
        elif not m and name.endswith(".link"):
            reason = "not named <step>.<keyid[:8]>.link, so no step reads it"
        else:
            continue
        out.append({"file": name, "reason": reason})
    return out


@dataclass
class Chain:
    """Accepted links per step (one per functionary key) and what was reported about them."""

    links: dict[str, dict[str, VerifiedLink]] = field(default_factory=dict)
    reports: list[StepReport] = field(default_factory=list)


# What may differ between the links of a step with threshold > 1: when and where each
# functionary ran it, and what the command printed. The rest is read downstream (the run id, the
# command the report shows, the commit and parameters SLSA provenance names, the patterns behind
# the extra-file check, the datasets, objects and base models verified), so one functionary must
# not decide it alone.
_OWN_RUN = frozenset({"started_on", "finished_on", "mlflow_run_id", "platform"})


def _disagreement(a: LinkData, b: LinkData) -> str | None:
    """What two links of one step record differently, or None when they agree."""
    if a.materials != b.materials or a.products != b.products:
        return "materials or products"
    keys = (a.environment.keys() | b.environment.keys()) - _OWN_RUN
    differ = [
        f"environment.{k}" for k in sorted(keys) if a.environment.get(k) != b.environment.get(k)
    ]
    if a.command != b.command:  # shown as the step's command
        differ.insert(0, "command")
    if a.byproducts.get("return-value") != b.byproducts.get("return-value"):
        differ.insert(0, "byproducts.return-value")  # stdout and stderr may differ
    return ", ".join(differ) or None


def load_chain(layout: Any, links_dir: str, names: dict[str, str]) -> tuple[Chain, list[Failure]]:
    """Accept each step's links that an authorized functionary validly signed; check thresholds."""
    from securesystemslib.signer import Key

    all_keys = {kid: Key.from_dict(kid, dict(k)) for kid, k in layout.keys.items()}
    chain, failures = Chain(), []
    reader = LinkReader()  # artifact sections shared by links are parsed once
    for step in layout.steps:
        allowed = {k: all_keys[k] for k in step.pubkeys if k in all_keys}
        allowed_text = ", ".join(_label(k, names) for k in sorted(allowed)) or "none"
        accepted: dict[str, VerifiedLink] = {}
        rejected: list[str] = []
        ignored: list[dict[str, str]] = []
        for path in step_links(links_dir, step.name):
            got = reader.read(path, allowed, known=all_keys)
            if isinstance(got, Rejected):
                why = _why_rejected(got, allowed, names)
                rejected.append(f"{got.file}: {why}")
                ignored.append({"file": got.file, "reason": why})
                continue
            if got.link.name != step.name:
                rejected.append(f"{got.file} records step '{got.link.name}', not '{step.name}'")
                ignored.append(
                    {"file": got.file, "reason": f"records step '{got.link.name}' inside"}
                )
                continue
            if got.file != link_filename(step.name, got.keyid):
                # in-toto reads the one file named for each key; a second link by the same key
                # under another name would otherwise be chosen by how the names sort.
                why = f"signed by {_label(got.keyid, names)}, named for another key"
                rejected.append(f"{got.file}: {why}")
                ignored.append({"file": got.file, "reason": why})
                continue
            accepted[got.keyid] = got
        report = StepReport(
            step.name,
            [
                {
                    "file": lk.file,
                    "keyid": lk.keyid,
                    "functionary": names.get(lk.keyid, ""),
                    "run_id": lk.run_id or "",
                }
                for lk in accepted.values()
            ],
            ignored=ignored,
        )
        if accepted:
            first = next(iter(accepted.values())).link
            report.materials, report.products = len(first.materials), len(first.products)
        chain.reports.append(report)
        # Keys, not key ids: one key spelled two ways in the layout has two ids.
        distinct = len({key_material(all_keys[k]) for k in accepted})
        if distinct < len(accepted):
            rejected.append(f"{len(accepted)} key ids in the layout name {distinct} key(s)")
        if distinct < step.threshold:
            failures.append(
                Failure(
                    "links",
                    f"step '{step.name}' needs {step.threshold} link(s) signed by its "
                    f"functionaries, found {distinct} valid",
                    step=step.name,
                    expected=f"signed by: {allowed_text}",
                    actual="; ".join(rejected)
                    or f"no link file {step.name}.<keyid>.link in {links_dir}",
                    details=(*rejected, f"allowed keys: {allowed_text}"),
                )
            )
            continue
        head = next(iter(accepted.values()))
        for other in accepted.values():
            differ = _disagreement(head.link, other.link) if other is not head else None
            if differ:
                failures.append(
                    Failure(
                        "links",
                        f"step '{step.name}': links of its functionaries disagree on {differ}",
                        step=step.name,
                        expected=f"{differ} as in {head.file}",
                        actual=f"{differ} in {other.file} differs",
                    )
                )
                break
        chain.links[step.name] = accepted
    return chain, failures


# What `unsafe_paths` could refuse, looked for in all paths at once (joined by NUL, which no
# safe path holds): an empty path, a leading '/', a backslash, '//', a trailing '/', a '.' or
# '..' segment (substring tests, in C; those with a dot only when "/." or NUL-dot is there), a
# drive letter (a regex, run only when a ':' is there). Paths that pass this screen are safe;
# otherwise `unsafe_paths` itself checks them one by one.
_SUSPECT_PARTS = ("\x00\x00", "\x00/", "\\", "//", "/\x00")
_DOT_PARTS = ("/./", "/../", "\x00./", "\x00../", "/.\x00", "/..\x00", "\x00.\x00", "\x00..\x00")
_DRIVE = re.compile(r"\x00.:", re.S)


def _maybe_unsafe(paths: Collection[str]) -> bool:
    if not paths:
        return False
    joined = "\x00" + "\x00".join(paths) + "\x00"
    return (
        joined.count("\x00") != len(paths) + 1
        or any(part in joined for part in _SUSPECT_PARTS)
        or (("/." in joined or "\x00." in joined) and any(part in joined for part in _DOT_PARTS))
        or (":" in joined and _DRIVE.search(joined) is not None)
    )


def check_consistency(
    chain: Chain, run_id_optional: frozenset[str] = frozenset()
) -> tuple[str | None, list[Failure], list[str]]:
    """All links carry one pipeline run id; all artifact paths are relative and stay inside.

    A link without a run id (e.g. written by the upstream `in-toto-run`) fails, naming the link
    and both fixes, unless its step is in `run_id_optional` (`run_id: optional` in the signed
    layout): then it is accepted with a warning. Returns the run id, failures and warnings.
    """
    failures: list[Failure] = []
    warnings: list[str] = []
    run_ids: dict[str, list[str]] = {}
    no_run_id: list[tuple[str, str]] = []  # step, link file
    # Each artifact section is screened at C speed; only when one looks suspicious are the
    # distinct paths (a dataset path usually appears in several links) checked one by one.
    # Relative paths and well-formed s3:// URIs are safe ("//" sends every URI to the full check).
    sections = {  # by identity: links share the sections whose bytes were equal
        id(section): section
        for by_key in chain.links.values()
        for lk in by_key.values()
        for section in (lk.link.materials, lk.link.products)
    }.values()
    unsafe: set[str] = set()
    if any(map(_maybe_unsafe, sections)):
        distinct = set(itertools.chain.from_iterable(sections))
        unsafe = set(objects.unsafe_artifacts(distinct))
    for step, by_key in chain.links.items():
        for link in by_key.values():
            if link.run_id:
                run_ids.setdefault(link.run_id, []).append(f"{step} ({link.file})")
            else:
                no_run_id.append((step, link.file))
            for kind in ("materials", "products"):
                bad = sorted(unsafe.intersection(getattr(link.link, kind))) if unsafe else []
                for p in bad[:20]:
                    failures.append(
                        Failure(
                            "paths",
                            f"step '{step}': {kind[:-1]} path '{p}' is absolute, not "
                            "normalised or escapes the base directory",
                            step=step,
                            artifact=p,
                        )
                    )
    for step, file in no_run_id:
        if step in run_id_optional:
            warnings.append(
                f"step '{step}': link {file} has no pipeline run id (recorded outside "
                "ml-provenance, e.g. by the upstream in-toto-run); accepted because the layout "
                "marks the step `run_id: optional`, but it is not tied to this pipeline run"
            )
            continue
        failures.append(
            Failure(
                "run-id",
                f"step '{step}': link {file} has no pipeline run id, so it cannot be tied to "
                "this pipeline run (recorded outside ml-provenance, e.g. by the upstream "
                "in-toto-run?)",
                step=step,
                details=(
                    f"re-record step '{step}' with `provenance run {step} … -- COMMAND` or the "
                    "@provenance.step decorator, which record the run id",
                    f"or accept such links for this step: add `run_id: optional` to step "
                    f"'{step}' in the layout YAML and sign it again",
                ),
            )
        )
    if len(run_ids) > 1:
        # The run most links belong to is the current one; the others are named as stale.
        # Run ids are shown whole: orchestrators' ids are long and two runs' ids can share a
        # long prefix (``airflow:DAG/scheduled__2026-…``), so a shortened id could name neither.
        current = Counter({rid: len(v) for rid, v in run_ids.items()}).most_common(1)[0][0]
        stale = [
            f"{entry}: from pipeline run {rid}, not {current} like the other links "
            "(a stale link from a previous run?)"
            for rid, entries in run_ids.items()
            if rid != current
            for entry in entries
        ]
        failures.append(
            Failure(
                "run-id",
                f"links come from {len(run_ids)} different pipeline runs",
                details=(
                    *(f"run {rid}: {', '.join(steps)}" for rid, steps in run_ids.items()),
                    *stale,
                ),
            )
        )
    run_id = next(iter(run_ids)) if len(run_ids) == 1 else None
    return run_id, failures, warnings
