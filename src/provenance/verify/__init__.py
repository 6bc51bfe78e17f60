"""`verify`: in-toto semantics for a signed layout and its links, plus what in-toto leaves open.

Phases, in order (verification stops after the first phase that fails):
layout-signature, layout-expiry, links (who signed, thresholds), paths and run-id, rules,
inspections, files (the real files equal the recorded products).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from typing import Any

from provenance.hashing import check_relative
from provenance.record._link import LinkData, parse_link
from provenance.verify._files import check_files, expected_products
from provenance.verify._layout import check_expiry, load_signed_layout
from provenance.verify._links import Chain, check_consistency, load_chain
from provenance.verify._rules import check_rules
from provenance.verify.result import Failure, StepReport, VerificationResult

# expected products (path -> (sha256, step)) -> (artifacts checked, failures)
ProductCheck = Callable[[dict[str, tuple[str, str]]], tuple[int, list[Failure]]]

__all__ = [
    "Chain",
    "Failure",
    "LinkData",
    "ProductCheck",
    "StepReport",
    "VerificationResult",
    "expected_products",
    "parse_link",
    "verify",
]


def verify(
    layout: str,
    layout_keys: Sequence[Any],
    links_dir: str = ".provenance/links",
    base: str = ".",
    *,
    artifacts: Sequence[str] = (),
    check_files_on_disk: bool = True,
    final_products: ProductCheck | None = None,
) -> VerificationResult:
    """Verify `layout` (signed by every key in `layout_keys`) against the links and the files.

    The last phase compares the recorded products with the files in `base`; `final_products`
    replaces it (the MLflow gate checks the files downloaded from the registry instead).
    Returns a VerificationResult; raises InputError subclasses for unreadable/invalid inputs.
    """
    from provenance.layout import functionary_names

    for pattern in artifacts:
        check_relative(pattern.rstrip("/") or ".", what=f"--artifact '{pattern}'")
    result = VerificationResult(layout=layout, base=base)

    def phase(name: str, failures: list[Failure]) -> bool:
        result.phases_run.append(name)
        result.failures.extend(failures)
        return not failures

    lay, failures = load_signed_layout(layout, layout_keys)
    if not phase("layout-signature", failures) or lay is None:
        return result
    if not phase("layout-expiry", check_expiry(lay, layout)):
        return result
    names = functionary_names(lay.readme or "")
    chain, failures = load_chain(lay, links_dir, names)
    result.steps = chain.reports
    if not phase("links", failures):
        return result
    run_id, failures = check_consistency(chain)
    result.run_id = run_id
    if not phase("consistency", failures):
        return result
    links: dict[str, Any] = {s: next(iter(by_key.values())) for s, by_key in chain.links.items()}
    if not phase("rules", check_rules(lay.steps, links)):
        return result
    if lay.inspect and not phase("inspections", _inspections(lay, links, base)):
        return result
    if final_products is not None:
        checked, failures = final_products(expected_products(lay, links))
        result.artifacts_checked = checked
        phase("files", failures)
    elif check_files_on_disk:
        checked, failures = check_files(lay, links, base, links_dir, artifacts)
        result.artifacts_checked = checked
        phase("files", failures)
    return result


def _inspections(layout: Any, links: dict[str, Any], base: str) -> list[Failure]:
    """Run the layout's inspection commands in `base` (the owner signed them) and check rules."""
    from in_toto import verifylib
    from in_toto.exceptions import BadReturnValueError

    cwd = os.getcwd()
    try:
        os.chdir(base)
        # No short timeout: inspections may re-hash large artifacts.
        inspection_links = verifylib.run_all_inspections(layout, False, 24 * 3600)
    except BadReturnValueError as exc:
        return [Failure("inspections", f"inspection failed: {exc}")]
    finally:
        os.chdir(cwd)
    combined = dict(links)
    for name, metadata in inspection_links.items():
        combined[name] = metadata.get_payload()
    return check_rules(layout.inspect, combined)
