"""Check a dataset's real members against its manifest: missing, extra, changed, with counts.

Both sides are streams in manifest order (the manifest as written; the members hashed afresh
by the engine and sorted), merged like `comm`: memory stays flat in the member count, and only
the first `LIMIT` names of each kind are kept for the report.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from provenance.datasets import _engines
from provenance.datasets._format import Member, unescape
from provenance.datasets._manifest import ManifestInfo, _sorted_members, members, scan
from provenance.datasets._sources import source_of
from provenance.errors import InputError, UsageError
from provenance.hashing import Change

LIMIT = 20  # names shown per kind of difference
KINDS = ("missing", "extra", "changed")


@dataclass
class DatasetCheck:
    """The outcome of `verify_dataset` (the CLI's Outcome: ok, verdict, lines, to_dict)."""

    manifest: ManifestInfo
    source: str
    engine: str
    actual_members: int = 0
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    shown: list[Change] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every member is present, none is extra and none changed."""
        return not any(self.counts.values())

    @property
    def verdict(self) -> str:
        """One line: PASS or FAIL with the counts."""
        where = f"{self.source} against {self.manifest.path}"
        if self.ok:
            return f"PASS: {self.manifest.members} members of {where} match"
        counts = ", ".join(f"{n} {k}" for k, n in self.counts.items() if n)
        return f"FAIL: {where}: {counts} (of {self.manifest.members} recorded)"

    def lines(self) -> list[str]:
        """One line per difference shown, then how many more there are."""
        out = [c.message() for c in self.shown]
        hidden = sum(self.counts.values()) - len(self.shown)
        if hidden > 0:
            out.append(f"... and {hidden} more (the first {LIMIT} of each kind are shown)")
        return out

    def add(self, change: Change) -> None:
        """Count one difference; keep its name while fewer than LIMIT of its kind are kept."""
        self.counts[change.kind] += 1
        if self.counts[change.kind] <= LIMIT:
            self.shown.append(change)

    def to_dict(self) -> dict[str, Any]:
        """The --json document."""
        return {
            "ok": self.ok,
            "verdict": self.verdict,
            "manifest": self.manifest.to_dict(),
            "source": self.source,
            "engine": self.engine,
            "actual_members": self.actual_members,
            "counts": dict(self.counts),
            "shown": {
                k: [
                    {"path": c.path, "expected": c.expected, "actual": c.actual}
                    for c in self.shown
                    if c.kind == k
                ]
                for k in KINDS
            },
        }


def verify_dataset(
    manifest_path: str,
    src: str,
    *,
    engine: str | None = None,
    quiet: bool = False,
    expect_sha256: str | None = None,
) -> DatasetCheck:
    """Re-hash every member of `src` and compare it with the manifest at `manifest_path`.

    A malformed manifest is an InputError (exit 3) found before anything is hashed; with
    `expect_sha256` (a manifest a link recorded) a manifest whose bytes hash to something else,
    or whose kind is not the source's, is refused the same way.
    """
    info = scan(manifest_path)
    if expect_sha256 is not None and info.sha256 != expect_sha256:
        raise InputError(
            manifest_path, f"manifest sha256 is {info.sha256}, expected {expect_sha256}"
        )
    source = source_of(src)
    if source.kind != info.kind:
        message = (
            f"is a manifest of {'an' if info.kind == 's3' else 'a'} {info.kind} "
            f"dataset, but {src} is {'an s3' if source.kind == 's3' else 'a local'} one"
        )
        if expect_sha256 is not None:
            # A recorded manifest whose source the link names wrongly: bad input, not usage.
            raise InputError(manifest_path, message)
        raise UsageError(f"{manifest_path} {message}")
    name = _engines.choose(engine)
    source.check()
    check = DatasetCheck(info, source.describe(), name)
    with _sorted_members(source, name, None, quiet) as (actual, _stats):
        expected = ((m.line.split(b"\t", 1)[0], m) for m in members(manifest_path, info.sha256))
        for change in _merge(expected, actual, check):
            check.add(change)
    return check


def _merge(
    expected: Iterator[tuple[bytes, Member]], actual: Iterator[bytes], check: DatasetCheck
) -> Iterator[Change]:
    """Walk both sorted streams at once, yielding each difference."""
    exp = next(expected, None)
    act = next(actual, None)
    while exp is not None or act is not None:
        if act is not None:
            a_key, a_size, a_rest = act.rstrip(b"\n").split(b"\t", 2)
        if exp is not None and (act is None or exp[0] < a_key):
            m = exp[1]
            yield Change(m.path, m.digest, None)
            exp = next(expected, None)
            continue
        check.actual_members += 1
        a_digest = a_rest[:64].decode("ascii")
        if exp is None or a_key < exp[0]:
            yield Change(unescape(a_key, check.source), None, a_digest)
        else:
            m = exp[1]
            if m.digest != a_digest or m.size != int(a_size):
                size = int(a_size)
                shown = a_digest if size == m.size else f"{a_digest} (size {m.size} -> {size})"
                yield Change(m.path, m.digest, shown)
            exp = next(expected, None)
        act = next(actual, None)
