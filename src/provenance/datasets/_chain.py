"""The datasets a verified chain created: re-hash their real members against the manifests.

A step records a dataset product as its manifest (record/_datasets.py) and names the source in
`environment.datasets.products`. When that manifest is a final product (the files phase has
already found it on disk with the recorded digest), the members it lists must be the real ones:
`verify_dataset` re-hashes the source and names what is missing, extra or changed. Only local
sources inside the base directory are re-hashed here (verification does not fetch objects, nor
read outside the base); the others are returned as skipped. The kind comes from the manifest's
own header: a description in the link that disagrees with it (a local manifest described as
`s3`, say) is a finding, not a reason to skip the check.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from typing import Any, NamedTuple

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


def dataset_products(
    links: Mapping[str, Any], final: Iterable[str]
) -> list[tuple[str, str, dict[str, Any]]]:
    """(step, manifest path, description) of each dataset product that is a final product."""
    wanted = set(final)
    found = []
    for step, link in sorted(links.items()):
        recorded = link.environment.get("datasets", {})
        products = recorded.get("products", {}) if isinstance(recorded, dict) else {}
        if not isinstance(products, dict):
            continue
        for manifest, described in sorted(products.items()):
            if manifest in wanted and isinstance(described, dict):
                found.append((step, manifest, described))
    return found


def check_dataset_products(
    links: Mapping[str, Any], final: Mapping[str, tuple[str, str]], base: str
) -> tuple[list[DatasetFinding], list[str]]:
    """(findings, skipped manifests) for the chain's final dataset products under `base`."""
    findings: list[DatasetFinding] = []
    skipped: list[str] = []
    for step, manifest, described in dataset_products(links, final):
        source = described.get("source")
        try:
            kind = kind_of(os.path.join(base, manifest))
        except InputError as exc:
            findings.append(DatasetFinding(step, manifest, f"step '{step}': {exc}", ()))
            continue
        # The manifest (its digest checked by the files phase) says what it lists; the link's
        # description must agree with it, or the dataset would go unchecked by both phases.
        claimed = described.get("kind")
        uri = isinstance(source, str) and objects.is_object_uri(source)
        if claimed != kind or not isinstance(source, str) or uri != (kind == "s3"):
            findings.append(
                DatasetFinding(
                    step,
                    manifest,
                    f"dataset product {manifest} of step '{step}': the link describes it as "
                    f"{printable(str(claimed))} dataset {printable(str(source))}, but the "
                    f"manifest lists {'an' if kind == 's3' else 'a'} {kind} one; its members "
                    "cannot be checked",
                    (),
                )
            )
            continue
        if kind != "local":
            skipped.append(manifest)
            continue
        try:
            rel = check_relative(source, what="dataset source")
        except PathEscapeError:
            skipped.append(manifest)
            continue
        try:
            check = verify_dataset(
                os.path.join(base, manifest),
                os.path.join(base, rel),
                quiet=True,
                expect_sha256=final[manifest][0],
            )
        except InputError as exc:
            findings.append(
                DatasetFinding(step, manifest, f"dataset {rel} of step '{step}': {exc}", ())
            )
            continue
        if not check.ok:
            findings.append(
                DatasetFinding(
                    step,
                    manifest,
                    f"dataset {rel} of step '{step}' does not match its manifest {manifest}: "
                    + ", ".join(f"{n} {k}" for k, n in check.counts.items() if n),
                    tuple(check.lines()),
                )
            )
    return findings, skipped
