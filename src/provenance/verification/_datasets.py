"""The `datasets` phase: final dataset products hold what their manifests list (datasets/_chain)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from provenance.datasets import check_dataset_products
from provenance.links import LinkData
from provenance.verification._files import expected_products
from provenance.verification.result import Failure


def check_datasets(layout: Any, links: Mapping[str, LinkData], base: str) -> list[Failure]:
    """One failure per final dataset product whose real members differ from its manifest."""
    final = expected_products(layout, links)
    findings, _skipped = check_dataset_products(links, final, base)
    return [
        Failure("datasets", f.message, step=f.step, artifact=f.manifest, details=f.details)
        for f in findings
    ]
