"""Verification: in-toto semantics for a signed layout and its links, plus what in-toto leaves open.

Phases, in order (verification stops after the first phase that fails):
layout-signature, layout-expiry, links (who signed, thresholds), paths and run-id, rules,
inspections, thresholds (the metrics the layout requires, from digest-checked products), then
either files (the real files equal the recorded products) or model (the
registered files equal the layout's declared model).
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from provenance.hashing import check_relative
from provenance.links import LinkData
from provenance.verification._datasets import check_datasets
from provenance.verification._diff import failures_from_diff
from provenance.verification._files import check_files, expected_products, model_manifest
from provenance.verification._layout import check_expiry, load_signed_layout
from provenance.verification._links import Chain, check_consistency, load_chain, stray_links
from provenance.verification._rules import check_rules
from provenance.verification._thresholds import Evidence, check_thresholds, load_metrics
from provenance.verification.result import Failure, StepReport, VerificationResult

if TYPE_CHECKING:
    from securesystemslib.signer import Key

__all__ = [
    "Chain",
    "Failure",
    "LinkData",
    "StepReport",
    "VerificationResult",
    "expected_products",
    "failures_from_diff",
    "load_metrics",
    "model_manifest",
    "verify",
]


def _keys(layout_keys: Sequence[Key | str | os.PathLike[str]]) -> list[Key]:
    """Public keys as given: Key objects, or paths to PEM public keys."""
    from provenance.signing import load_public_key

    return [
        load_public_key(os.fspath(k)) if isinstance(k, (str, os.PathLike)) else k
        for k in layout_keys
    ]


def verify(
    layout: str,
    layout_keys: Sequence[Key | str | os.PathLike[str]],
    links_dir: str = ".provenance/links",
    base: str = ".",
    *,
    artifacts: Sequence[str] = (),
    check_files_on_disk: bool = True,
    model_files: Mapping[str, str] | None = None,
    model_source: str = "the registered version",
    evidence: Evidence | None = None,
) -> VerificationResult:
    """Verify `layout` (signed by every key in `layout_keys`) against the links and the files.

    Named phases run in order (layout signature and expiry, links, consistency, rules,
    inspections, thresholds, then the model or the files and datasets); the first phase that
    fails ends the run, and its failures are in the result.

    Args:
        layout: path of the signed layout (a DSSE envelope).
        layout_keys: the layout owners' public keys, as Key objects or paths to PEM files;
            every one of them must have signed the layout.
        links_dir: where the step links are.
        base: the project root the recorded artifact paths are relative to.
        artifacts: product patterns to re-check on disk instead of all products.
        check_files_on_disk: False skips the last phase (the files themselves).
        model_files: path -> sha256 of a registered model version: compared with exactly the
            model the layout declares (instead of the files in `base`), and the layout's
            inspections run in `base`, where those files are.
        model_source: how `model_files` is named in messages.
        evidence: where the metrics files the layout's thresholds read are (a directory, or
            recorded path -> local file); by default `base`.

    Returns:
        The VerificationResult, carrying the verified layout bytes, its policy and the
        accepted links (consumers never re-read them from disk).

    Raises:
        InputError: an unreadable or invalid input (a subclass names which: LayoutError for a
            malformed layout or policy declaration, LinkFormatError for a validly signed but
            malformed link, ...); exit 3.
    """
    for pattern in artifacts:
        check_relative(pattern.rstrip("/") or ".", what=f"--artifact '{pattern}'")
    keys = _keys(layout_keys)
    result = VerificationResult(layout=layout, base=base)

    def phase(name: str, failures: list[Failure]) -> bool:
        result.phases_run.append(name)
        result.failures.extend(failures)
        return not failures

    lay, policy, result.layout_bytes, failures = load_signed_layout(layout, keys)
    if not phase("layout-signature", failures) or lay is None or policy is None:
        return result
    result.layout_obj, result.policy = lay, policy
    if not phase("layout-expiry", check_expiry(lay, layout)):
        return result
    chain, failures = load_chain(lay, links_dir, policy.names)
    result.steps = chain.reports
    result.ignored = stray_links(lay, links_dir)
    if not phase("links", failures):
        return result
    run_id, failures, result.warnings = check_consistency(chain, policy.run_id_optional)
    result.run_id = run_id
    if not phase("consistency", failures):
        return result
    accepted = {s: next(iter(by_key.values())) for s, by_key in chain.links.items()}
    links = {s: v.link for s, v in accepted.items()}
    if not phase("rules", check_rules(lay.steps, links)):
        return result
    if lay.inspect and not phase("inspections", _inspections(lay, links, base)):
        return result
    if policy.thresholds:
        source = base if evidence is None else evidence
        where = (
            f"the base directory {base}"
            if evidence is None
            else f"the evidence {evidence}"
            if isinstance(evidence, str)
            else "the evidence (log it with `provenance register --evidence FILE`)"
        )
        result.thresholds, failures = check_thresholds(policy.thresholds, links, source, where)
        if not phase("thresholds", failures):
            return result
    if model_files is not None:
        if policy.model is None:
            phase(
                "model",
                [
                    Failure(
                        "model",
                        f"layout {layout} declares no model (add `model: {{step: …, products: "
                        "…}` and sign it again), so no registered files can be checked",
                    )
                ],
            )
            return result
        want = model_manifest(policy.model, links)
        result.artifacts_checked = len(model_files)
        owner = dict.fromkeys(want.files, policy.model.step)
        if not phase(
            "model", failures_from_diff(list(want.diff(model_files)), model_source, owner)
        ):
            return result
    elif check_files_on_disk:
        own = {v.file for by_key in chain.links.values() for v in by_key.values()}
        checked, failures = check_files(
            lay, links, base, links_dir, artifacts, own=own, run_id=run_id
        )
        result.artifacts_checked = checked
        if not phase("files", failures):
            return result
        if not phase("datasets", check_datasets(lay, links, base, artifacts)):
            return result
    result.links = accepted
    return result


def _inspections(layout: Any, links: dict[str, LinkData], base: str) -> list[Failure]:
    """Run the layout's inspection commands in `base` (the owner signed them) and check rules.

    Each command runs with `base` as its working directory (no process-wide chdir) and with no
    short timeout (inspections may re-hash large artifacts); what it saw is recorded like a step.
    """
    import subprocess

    from provenance.hashing import hash_artifacts

    combined: dict[str, Any] = dict(links)
    for insp in layout.inspect:
        command = list(insp.run)
        before = hash_artifacts(base, ["."])
        try:
            # stdout goes to stderr: `--json` output stays one document.
            code = subprocess.run(command, cwd=base, stdout=2, check=False).returncode
        except OSError as exc:
            return [
                Failure(
                    "inspections",
                    f"inspection '{insp.name}' could not run {command[0]!r}: {exc.strerror}",
                    step=insp.name,
                )
            ]
        if code != 0:
            return [
                Failure(
                    "inspections",
                    f"inspection '{insp.name}' ({' '.join(command)}) exited with status {code}",
                    step=insp.name,
                )
            ]
        after = hash_artifacts(base, ["."])
        combined[insp.name] = LinkData(
            insp.name, command, before.as_in_toto(), after.as_in_toto(), {}, {}
        )
    return check_rules(layout.inspect, combined)
