"""Phase 8: the files on disk must be the files the pipeline recorded.

in-toto only compares links with each other; a weight file swapped after the last step ran is
invisible to it. Here every product's latest recorded digest is compared with the real file, and
files that appeared under a step's product patterns without being recorded are reported.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

from provenance.errors import ArtifactError
from provenance.hashing import Excludes, collect, compile_patterns, hash_paths
from provenance.verify.result import Failure

MAX_LISTED = 50


def expected_products(layout: Any, links: dict[str, Any]) -> dict[str, tuple[str, str]]:
    """path -> (sha256, step): the last product digest in layout order, minus later deletions."""
    expected: dict[str, tuple[str, str]] = {}
    for step in layout.steps:
        link = links.get(step.name)
        if link is None:
            continue
        patterns = compile_patterns(link.patterns("products"))
        for path in link.materials:
            # Consumed by a later step and gone from where that step writes: it deleted the file.
            if (
                path in expected
                and path not in link.products
                and any(p.matches(path) for p in patterns)
            ):
                del expected[path]
        for path, digests in link.products.items():
            expected[path] = (digests["sha256"], step.name)  # parse_link guarantees sha256
    return expected


def check_files(
    layout: Any, links: dict[str, Any], base: str, links_dir: str, only: Sequence[str] = ()
) -> tuple[int, list[Failure]]:
    """Return (number of artifacts checked, failures)."""
    expected = expected_products(layout, links)
    selectors = compile_patterns(only) if only else None
    if selectors is not None:
        expected = {p: v for p, v in expected.items() if any(s.matches(p) for s in selectors)}
    walk: list[tuple[str, str]] = []  # (pattern, step) whose files must all be recorded
    if only:
        walk = [(p, "--artifact") for p in only]
    else:
        for step in layout.steps:
            if step.name in links:
                walk += [(p, step.name) for p in links[step.name].patterns("products")]
    excludes = list(Excludes.DEFAULT)
    rel_links = os.path.relpath(os.path.abspath(links_dir), os.path.abspath(base))
    if not rel_links.startswith(".."):
        excludes.append(rel_links.replace(os.sep, "/") + "/")
    try:
        on_disk = set(collect(base, compile_patterns([p for p, _ in walk]), Excludes(excludes)))
        present = sorted(on_disk | {p for p in expected if os.path.isfile(os.path.join(base, p))})
        digests = dict(zip(present, (d.hex() for d in hash_paths(base, present)), strict=True))
    except ArtifactError as exc:
        return 0, [Failure("files", f"cannot check the files in {base}: {exc}", artifact=exc.path)]
    failures: list[Failure] = []
    for path, (want, step) in sorted(expected.items()):
        got = digests.get(path)
        if got is None:
            failures.append(
                Failure(
                    "files",
                    f"missing: '{path}' (a product of step '{step}') is not in {base}",
                    step=step,
                    artifact=path,
                    expected=want,
                    actual="missing",
                )
            )
        elif got != want:
            failures.append(
                Failure(
                    "files",
                    f"hash mismatch for '{path}': expected {want} (recorded "
                    f"by step '{step}'), actual {got}",
                    step=step,
                    artifact=path,
                    expected=want,
                    actual=got,
                )
            )
    patterns = [(compile_patterns([p])[0], step) for p, step in walk]
    for path in sorted(on_disk - expected.keys()):
        step = next((s for pat, s in patterns if pat.matches(path)), "?")
        failures.append(
            Failure(
                "files",
                f"extra file: '{path}' is under the products of "
                f"{'step ' + repr(step) if step != '--artifact' else '--artifact'} "
                "but no step recorded it",
                step=None if step == "--artifact" else step,
                artifact=path,
                expected="absent",
                actual=digests.get(path),
            )
        )
    if len(failures) > MAX_LISTED:
        extra = len(failures) - MAX_LISTED
        failures = [*failures[:MAX_LISTED], Failure("files", f"... and {extra} more file problems")]
    return len(present), failures
