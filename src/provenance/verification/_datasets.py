"""The `datasets` phase: final dataset products hold what their manifests list.

A step records a dataset product as its manifest (one artifact) and describes the dataset in
`environment.datasets.products`. Once the files phase has found the manifest on disk with the
recorded digest, the members it lists must be the real ones: each source is re-hashed and
compared with the manifest (missing, extra, changed, with counts and the first names).
Local directories inside the base are datasets/_chain.py's; `s3://` prefixes are re-hashed
here, streaming the objects with the same S3 settings as `provenance dataset verify`
(`AWS_*`, `MLFLOW_S3_ENDPOINT_URL`). A store that cannot be reached is an infrastructure
failure (exit 4), never a pass.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

from provenance.datasets import check_dataset_products, recorded_datasets, verify_dataset
from provenance.errors import InputError
from provenance.hashing import objects, printable
from provenance.links import LinkData
from provenance.verification._files import expected_products
from provenance.verification.result import Failure

PHASE = "datasets"


def check_datasets(
    layout: Any, links: Mapping[str, LinkData], base: str, only: Sequence[str] = ()
) -> list[Failure]:
    """One failure per final dataset product whose real members differ from its manifest.

    With `only` (verify's `--artifact` patterns), just the datasets whose manifest they select.
    """
    final = expected_products(layout, links, only)
    findings, _skipped = check_dataset_products(links, final, base)
    failures = [
        Failure(PHASE, f.message, step=f.step, artifact=f.manifest, details=f.details)
        for f in findings
    ]
    return failures + _check_objects(links, final, base)


def _check_objects(
    links: Mapping[str, LinkData], final: Mapping[str, tuple[str, str]], base: str
) -> list[Failure]:
    """Re-hash every final dataset product whose source is an `s3://` prefix."""
    failures: list[Failure] = []
    for step, link in sorted(links.items()):
        for ds in recorded_datasets(link.environment, link.materials, link.products):
            recorded = final.get(ds.manifest)
            if (
                ds.side != "products"
                or ds.kind != "s3"
                or ds.source is None
                or not objects.is_object_uri(ds.source)
                or recorded is None
                or recorded[1] != step  # a later step's manifest at this path is the final one
            ):
                continue
            source = printable(ds.source)
            try:
                check = verify_dataset(
                    os.path.join(base, ds.manifest),
                    ds.source,
                    quiet=True,
                    expect_sha256=recorded[0],
                )
            except InputError as exc:  # a malformed manifest, a member that cannot be read
                failures.append(
                    Failure(
                        PHASE,
                        f"dataset {source} of step '{step}': {exc}",
                        step=step,
                        artifact=ds.manifest,
                    )
                )
                continue
            if not check.ok:
                counts = ", ".join(f"{n} {k}" for k, n in check.counts.items() if n)
                failures.append(
                    Failure(
                        PHASE,
                        f"dataset {source} of step '{step}' does not match its manifest "
                        f"{ds.manifest}: {counts}",
                        step=step,
                        artifact=ds.manifest,
                        details=tuple(check.lines()),
                    )
                )
    return failures
