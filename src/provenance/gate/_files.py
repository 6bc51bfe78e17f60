"""Compare files downloaded from the registry with the products the pipeline recorded."""

from __future__ import annotations

from provenance.hashing import hash_artifacts
from provenance.verify import Failure


def hash_tree(root: str) -> dict[str, str]:
    """Every file of a downloaded model version. No excludes: whatever the registry serves
    (a `__pycache__/` or `.git/` planted in the artifacts included) must be accounted for."""
    return hash_artifacts(root, ["**"], ()).digests


def infer_prefix(files: dict[str, str], expected: dict[str, tuple[str, str]]) -> str | None:
    """Where in the project the registered files live (`models/`): the prefix under which the
    most of them were recorded. Files it does not explain are then reported as extra."""
    votes: dict[str, int] = {}
    for rel in files:
        for p in expected:
            if p == rel or p.endswith("/" + rel):
                prefix = p[: len(p) - len(rel)]
                votes[prefix] = votes.get(prefix, 0) + 1
    if not votes:
        return None
    return min(votes, key=lambda prefix: (-votes[prefix], len(prefix)))


def check_registered(
    files: dict[str, str], expected: dict[str, tuple[str, str]], prefix: str | None, source: str
) -> tuple[int, list[Failure]]:
    if prefix is None:
        prefix = infer_prefix(files, expected)
        if prefix is None:
            listed = ", ".join(sorted(files)[:5])
            return 0, [
                Failure(
                    "files",
                    f"the registered files ({listed}) are not products of "
                    "any step; pass --artifact-path to say where they were produced",
                )
            ]
    elif prefix and not prefix.endswith("/"):
        prefix += "/"
    failures = []
    for rel, got in sorted(files.items()):
        want = expected.get(prefix + rel)
        if want is None:
            failures.append(
                Failure(
                    "files",
                    f"extra file: '{rel}' in {source} was not recorded by any step",
                    artifact=rel,
                    expected="absent",
                    actual=got,
                )
            )
        elif want[0] != got:
            failures.append(
                Failure(
                    "files",
                    f"hash mismatch for '{rel}' in {source}: expected "
                    f"{want[0]} (product '{prefix + rel}' of step '{want[1]}'), "
                    f"actual {got}",
                    step=want[1],
                    artifact=rel,
                    expected=want[0],
                    actual=got,
                )
            )
    for path, (digest, step) in sorted(expected.items()):
        if path.startswith(prefix) and path[len(prefix) :] not in files:
            failures.append(
                Failure(
                    "files",
                    f"missing: '{path[len(prefix) :]}' (product '{path}' of "
                    f"step '{step}') is not in {source}",
                    step=step,
                    artifact=path,
                    expected=digest,
                    actual="missing",
                )
            )
    return len(files), failures
