"""The `datasets` phase: final dataset products hold what their manifests list.

A step records a dataset product as its manifest (one artifact) and describes the dataset in
`environment.datasets.products`. Once the files phase has found the manifest on disk with the
recorded digest, the members it lists must be the real ones: each source (a local directory
inside the base, or an `s3://` prefix streamed with the S3 settings of `provenance dataset
verify`) is re-hashed and compared with the manifest by `provenance.datasets`
(missing, extra, changed, with counts and the first names). A store that cannot be reached is
an infrastructure failure (exit 4), never a pass.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from provenance.datasets import check_dataset_products
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
    return [
        Failure(PHASE, f.message, step=f.step, artifact=f.manifest, details=f.details)
        for f in findings
    ]
