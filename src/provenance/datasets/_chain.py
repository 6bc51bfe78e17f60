"""The datasets a verified chain created: re-hash their real members against the manifests.

A step records a dataset product as its manifest (record/_datasets.py) and describes it in
`environment.datasets.products` (read through `recorded_datasets`). When that manifest is a
final product (the files phase has already found it on disk with the recorded digest), the
members it lists must be the real ones: `verify_dataset` re-hashes the source, a local
directory inside the base directory or an `s3://` prefix (with the S3 settings of `provenance
dataset verify`; an unreachable store raises InfrastructureError, never a pass), and names what
is missing, extra or changed. A local source outside the base is returned as skipped. The kind
comes from the manifest's own header: a description in the link that disagrees with it (a local
manifest described as `s3`, say) is a finding, not a reason to skip the check.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any, NamedTuple

from provenance.datasets._dataset import RecordedDataset, recorded_datasets
from provenance.datasets._manifest import kind_of
from provenance.datasets._verify import verify_dataset
from provenance.errors import InputError, PathEscapeError
from provenance.hashing import check_relative, objects, printable


class DatasetFinding(NamedTuple):
    """One final dataset product that does not hold what its manifest lists."""

    step: str
    manifest: str
    message: str
    details: tuple[str, ...]


def check_dataset_products(
    links: Mapping[str, Any], final: Mapping[str, tuple[str, str]], base: str
) -> tuple[list[DatasetFinding], list[str]]:
    """(findings, skipped manifests) for the chain's final dataset products.

    `final` maps each final product to (sha256, the step that made it): a dataset is checked
    as the product of that step only (a later step's manifest at the same path is the final one).
    """
    findings: list[DatasetFinding] = []
    skipped: list[str] = []
    for step, link in sorted(links.items()):
        for ds in recorded_datasets(link.environment, link.materials, link.products):
            recorded = final.get(ds.manifest)
            if ds.side != "products" or recorded is None or recorded[1] != step:
                continue
            finding = _check(step, ds, recorded[0], base)
            if finding is None:
                skipped.append(ds.manifest)
            elif finding.message:
                findings.append(finding)
    return findings, skipped


def _check(step: str, ds: RecordedDataset, sha256: str, base: str) -> DatasetFinding | None:
    """The finding for one dataset (an empty message when it holds); None when skipped."""
    manifest = ds.manifest

    def finding(message: str, details: tuple[str, ...] = ()) -> DatasetFinding:
        return DatasetFinding(step, manifest, message, details)

    try:
        kind = kind_of(os.path.join(base, manifest))
    except InputError as exc:
        return finding(f"step '{step}': {exc}")
    # The manifest (its digest checked by the files phase) says what it lists; the link's
    # description must agree with it, or the dataset would go unchecked.
    source = ds.source
    if ds.kind != kind or source is None or objects.is_object_uri(source) != (kind == "s3"):
        return finding(
            f"dataset product {manifest} of step '{step}': the link describes it as "
            f"{printable(ds.kind or 'an unknown kind of')} dataset {printable(str(source))}, "
            f"but the manifest lists {'an' if kind == 's3' else 'a'} {kind} one; its members "
            "cannot be checked"
        )
    if kind == "local":
        try:
            name = check_relative(source, what="dataset source")
        except PathEscapeError:
            return None
        target = os.path.join(base, name)
    else:
        name = target = source
    try:
        check = verify_dataset(
            os.path.join(base, manifest), target, quiet=True, expect_sha256=sha256
        )
    except InputError as exc:  # a malformed manifest, a member that cannot be read
        return finding(f"dataset {printable(name)} of step '{step}': {exc}")
    if check.ok:
        return finding("")
    counts = ", ".join(f"{n} {k}" for k, n in check.counts.items() if n)
    return finding(
        f"dataset {printable(name)} of step '{step}' does not match its manifest {manifest}: "
        + counts,
        tuple(check.lines()),
    )
