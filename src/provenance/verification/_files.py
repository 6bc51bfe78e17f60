"""Phase 8: the real files must be the files the pipeline recorded.

in-toto only compares links with each other; a weight file swapped after the last step ran is
invisible to it. Here every product's latest recorded digest is compared with the real file, and
every entry under a step's product directories that no step recorded is reported: nothing there
is excluded (`__pycache__/`, `.git/`, dot-directories), and symlinks and special files are
refused by name without being opened.
"""

from __future__ import annotations

import bisect
import fnmatch
import itertools
import operator
import os
import re
import stat
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any

from provenance._fs import relative_inside
from provenance.datasets import recorded_datasets
from provenance.errors import ArtifactError, PathEscapeError, UsageError
from provenance.hashing import (
    Change,
    Manifest,
    check_relative,
    compile_patterns,
    hash_paths_packed,
    objects,
    walk_all,
)
from provenance.layout import ModelDecl
from provenance.links import RUN_ID_FILE, ArtifactMap, LinkData, shas_of
from provenance.verification._diff import failures_from_diff
from provenance.verification._objects import check_objects, split_objects
from provenance.verification.result import Failure


def expected_products(
    layout: Any, links: Mapping[str, LinkData], only: Sequence[str] = ()
) -> dict[str, tuple[str, str]]:
    """Path -> (sha256, step): the last product digest in layout order, minus later deletions.

    With `only` (artifact patterns), just the products they select: a deletion only ever
    removes a path, so selecting first gives what selecting the whole result would.
    """
    return {
        path: (sha, producer(layout, links, path))
        for path, sha in latest_products(layout, links, only).items()
    }


def producer(layout: Any, links: Mapping[str, LinkData], path: str) -> str:
    """The step whose digest of product `path` is the expected one.

    That is the last step in layout order that recorded it (a step that deleted it only ever
    removes it).
    """
    return str(
        next(
            s.name
            for s in reversed(layout.steps)
            if s.name in links and path in links[s.name].products
        )
    )


def latest_products(
    layout: Any, links: Mapping[str, LinkData], only: Sequence[str] = ()
) -> dict[str, str]:
    """`expected_products` without the step names (path -> sha256): a million tuples less."""
    selectors = [p.regex.match for p in compile_patterns(only)]
    expected: dict[str, str] = {}
    for step in layout.steps:
        link = links.get(step.name)
        if link is None:
            continue
        products = link.products
        # Consumed by a later step and gone from where that step writes (its recorded product
        # patterns) or from what the owner's `delete` rules say it removes: it deleted the file.
        # (Its patterns are compiled whatever is selected: a malformed one is refused alike.)
        patterns = compile_patterns(objects.local_patterns(link.patterns("products")))
        matchers = [p.regex.match for p in patterns] + [
            re.compile(fnmatch.translate(rule)).match for rule in _delete_rules(step)
        ]
        if expected:
            for match in matchers:
                gone = [
                    p for p in filter(match, link.materials) if p in expected and p not in products
                ]
                for path in gone:
                    del expected[path]
        chosen: Iterable[str] = products
        if selectors:
            chosen = set(itertools.chain.from_iterable(filter(m, products) for m in selectors))
            chosen = [p for p in products if p in chosen]  # the link's order
        # parse_link guarantees a sha256 for every artifact
        shas: Iterable[Any] = (
            shas_of(products, list(chosen))
            if isinstance(products, ArtifactMap)
            else map(operator.itemgetter("sha256"), map(products.__getitem__, chosen))
        )
        expected.update(zip(chosen, shas, strict=False))
    return expected


def _rule_patterns(rules: Iterable[Any], *verbs: str) -> list[str]:
    """The patterns of the plain `VERB pattern` rules among `rules` with one of `verbs`."""
    return [str(rule[1]) for rule in rules if len(rule) == 2 and str(rule[0]).upper() in verbs]


def _delete_rules(step: Any) -> list[str]:
    """The patterns of the step's DELETE rules, on either side.

    in-toto applies them to what the step consumed and did not produce, and matches them with
    fnmatch (`*` crosses `/`): `latest_products` matches them the same way.
    """
    return _rule_patterns([*step.expected_materials, *step.expected_products], "DELETE")


def model_manifest(model: ModelDecl, links: Mapping[str, LinkData]) -> Manifest:
    """The deliverable: the declared step's products matching the declared pattern.

    Named relative to the pattern's directory (as they sit in a registered model version).

    Raises:
        UsageError: the model's step has no verified link.
    """
    link = links.get(model.step)
    if link is None:
        raise UsageError(f"the layout's model step '{model.step}' has no verified link")
    pattern = objects.compile_any(model.products)  # a local or an s3:// pattern
    root = model.root
    return Manifest(
        {
            path[len(root) :]: digests["sha256"]
            for path, digests in link.products.items()
            if pattern.matches(path) and path.startswith(root)
        }
    )


def _claims(pattern: Any, path: str) -> bool:
    """`path` lies under the directory a product pattern claims, or matches it."""
    return bool(pattern.root and path.startswith(pattern.root + "/")) or bool(pattern.matches(path))


def _claimed(step: Any, link: LinkData, own: Collection[str]) -> list[str]:
    """The product patterns whose directories hold only what the chain recorded.

    The patterns the step recorded, and the directories the owner's own CREATE and MODIFY
    product rules name for the step: all of them for a link with no usable record of its
    product patterns (none, empty or malformed: upstream `in-toto-run`, another recorder);
    otherwise those the step wrote a product into that its patterns do not already claim (a
    recording file by file, `-p models/a.bin`, or by a narrow glob). So a file planted there is
    not overlooked. A directory inside the source of a dataset this step produced (`own`, one
    the datasets phase checks) is left to that phase; a rule without a directory (`*`,
    `*.json`) names none: it would name the whole tree.
    """
    recorded = _recorded_patterns(link) or []
    folders = [p for p in _rule_folders(step) if not any(_within(p.root, s) for s in own)]
    if not recorded:
        return [p.text for p in folders]
    covered = [p.root for p in compile_patterns(recorded) if p.root]  # `_claims`: all below
    # What the step wrote: its product files, and the sources of the datasets it produced
    # (whose members are never products of their own), around a folder or inside it.
    made = _made_sources(link)
    return recorded + [
        p.text
        for p in folders
        if not any(p.root == c or p.root.startswith(c + "/") for c in covered)
        and (
            any(_within(m, p.root) or _within(p.root, m) for m in made)
            or any(f.startswith(p.root + "/") for f in link.products)
        )
    ]


def _made_sources(link: LinkData) -> list[str]:
    """The local sources of the link's dataset products, normalised.

    As the datasets phase reads them (`./data//x` is `data/x`); one that is not a relative
    path is left out.
    """
    return [
        source
        for d in recorded_datasets(link.environment, link.materials, link.products)
        if d.side == "products" and (source := _local_source(d)) is not None
    ]


def _local_source(dataset: Any) -> str | None:
    """A dataset's local source, normalised as the datasets phase reads it.

    None for an object store, or for a source that phase refuses (nothing is exempted for it).
    """
    if not dataset.source or "://" in dataset.source:
        return None
    try:
        return check_relative(dataset.source)
    except PathEscapeError:
        return None


def _rule_folders(step: Any) -> list[Any]:
    """The step's local CREATE and MODIFY product rules that name a directory."""
    rules = [  # local directories only: an object store's claims come from the recording
        r
        for r in _rule_patterns(step.expected_products, "CREATE", "MODIFY")
        if not objects.is_object_uri(r)
    ]
    return [p for p in compile_patterns(rules) if p.root]


def _consumed(links: Mapping[str, LinkData], path: str, sha: str | None) -> bool:
    """`path` with digest `sha` is an input of the chain, not a plant.

    A material some verified step recorded that no step produced (a step's input manifest
    beside its output in `.provenance/datasets/`); a product a later step deleted is not one.
    """
    return (
        sha is not None
        and any((link.materials.get(path) or {}).get("sha256") == sha for link in links.values())
        and not any(path in link.products for link in links.values())
    )


def _within(a: str, b: str) -> bool:
    """Relative directory `a` is `b` or lies inside it."""
    return a == b or a.startswith(b + "/")


def _checked_datasets(
    layout: Any, links: Mapping[str, LinkData], final: Mapping[str, str]
) -> dict[str, set[str]]:
    """Step -> the local sources of its dataset products the datasets phase will check.

    Those whose manifest is among the products the chain ends with (`final`, narrowed as
    `--artifact` narrows it), made by that step: the phase holds each to its manifest, members
    missing, changed or extra. No other dataset exempts anything here.
    """
    out: dict[str, set[str]] = {}
    for step, link in links.items():
        for d in recorded_datasets(link.environment, link.materials, link.products):
            sha = link.products.get(d.manifest, {}).get("sha256") if d.side == "products" else None
            source = _local_source(d)
            if (
                sha
                and source is not None
                and final.get(d.manifest) == sha
                and producer(layout, links, d.manifest) == step  # as the phase picks it
            ):
                out.setdefault(step, set()).add(source)
    return out


def _drop_members(
    found: list[str],
    checked: Mapping[str, set[str]],
    claims: Sequence[tuple[str, str]],
    entitled: Mapping[str, list[Any]],
) -> list[str]:
    """`found` without the members of the checked dataset products.

    A member stays (extra) when another step's claim covers it (`claims`: the steps' own,
    whatever `--artifact` says) and the owner's rules do not give its directory to the step
    that made the dataset (`entitled`: each step's create/modify folders): a step cannot take
    over another's directory, or a parent of it, by recording it, or the same dataset again,
    as its own dataset.
    """
    sources = [(source + "/", step) for step, srcs in checked.items() for source in srcs]
    if not sources:
        return found
    prefixes = tuple(prefix for prefix, _ in sources)
    compiled = compile_patterns([pattern for pattern, _ in claims])
    owned = [(p, step) for p, (_, step) in zip(compiled, claims, strict=True)]
    kept = []
    for f in found:
        if f.startswith(prefixes):
            maker = next(step for prefix, step in sources if f.startswith(prefix))
            if any(_claims(p, f) for p in entitled.get(maker, ())) or not any(
                other != maker and _claims(p, f) for p, other in owned
            ):
                continue  # a member: the datasets phase holds it to its manifest
        kept.append(f)
    return kept


def _recorded_patterns(link: LinkData) -> list[str] | None:
    """The product patterns the link recorded; None when it has none or they are malformed."""
    patterns = link.environment.get("patterns")
    products = patterns.get("products") if isinstance(patterns, dict) else None
    if not isinstance(products, list) or not all(isinstance(p, str) for p in products):
        return None
    return list(products)


def check_files(
    layout: Any,
    links: Mapping[str, LinkData],
    base: str,
    links_dir: str,
    only: Sequence[str] = (),
    *,
    own: Collection[str] = (),
    run_id: str | None = None,
) -> tuple[int, list[Failure]]:
    """Return (number of artifacts checked, failures).

    `own`: the file names of the links verification accepted, and `run_id` the run they share:
    where the links directory lies among the products, only those files and a `RUN_ID` naming
    that run are not held to the products.
    """
    expected = latest_products(layout, links, only)
    checked = _checked_datasets(layout, links, expected)
    owned = [
        (p, s.name)
        for s in layout.steps
        if s.name in links
        for p in _claimed(s, links[s.name], checked.get(s.name, set()))
    ]
    claims = [(p, "--artifact") for p in only] if only else owned
    expected, claims, stored_shas, stored_claims = split_objects(expected, claims)  # s3://
    claimed = [p for p, _ in claims]
    rel_links = relative_inside(links_dir, base)
    try:
        found, refused = _under(base, claimed)
        local = [(p, step) for p, step in owned if not objects.is_object_uri(p)]
        entitled = {s.name: _rule_folders(s) for s in layout.steps if s.name in checked}
        found = _drop_members(found, checked, local, entitled)
        if rel_links is not None:  # the chain's own files, wherever the links directory is
            _drop_link_files(found, rel_links, own, _names_run(links_dir, run_id))
        on_disk, skip = set(found), dict(refused)  # sets: 100k products are looked up here
        del found
        inside, outside = _Inside(base), set()  # products no claimed directory listed
        for path in expected:
            if path in on_disk or path in skip:
                continue
            if not inside(path):
                skip[path] = "is in a directory that reaches outside the base directory"
                refused.append((path, skip[path]))
            elif _regular(base, path):
                outside.add(path)
        present = sorted(on_disk | outside)
        packed = hash_paths_packed(base, present)  # 32 bytes a file, in `present`'s order
    except ArtifactError as exc:
        return 0, [Failure("files", f"cannot check the files in {base}: {exc}", artifact=exc.path)]
    failures = [
        Failure(
            "files",
            f"refused: '{path}' under the products {why}; it was not opened",
            artifact=path,
            expected="a recorded regular file",
            actual=why,
        )
        for path, why in refused
    ]
    changes = [
        c
        for c in _changes(expected, present, packed, on_disk.__contains__, outside)
        if c.path not in skip and not (c.expected is None and _consumed(links, c.path, c.actual))
    ]
    owner = {c.path: producer(layout, links, c.path) for c in changes if c.path in expected}
    compiled = [(compile_patterns([p])[0], step) for p, step in claims]
    for change in changes:
        if change.expected is None:  # extra: name the step whose products it sits among
            owner[change.path] = next((s for pat, s in compiled if _claims(pat, change.path)), "?")
    failures += failures_from_diff(changes, base, owner)
    stored = {p: (sha, producer(layout, links, p)) for p, sha in stored_shas.items()}
    stored_checked, stored_failures = check_objects(
        layout, links, stored, stored_claims, sources=not only
    )
    return len(present) + stored_checked, failures + stored_failures


_ABSENT = "-" * 64  # compares unequal to every digest
_BLOCK = 4096  # files whose digests are compared as one string


def _changes(
    expected: Mapping[str, str],
    present: Sequence[str],
    packed: bytes | bytearray,
    on_disk: Callable[[str], bool],
    outside: set[str],
) -> list[Change]:
    """`Manifest.diff` of the expected products against the hashed files, sorted by path.

    Without a second million-entry map: the digests of each block of files are compared as one
    string (in C), and only a block that differs is looked at file by file.
    """
    changes: list[Change] = []
    for start in range(0, len(present), _BLOCK):
        paths = present[start : start + _BLOCK]
        actual = packed[start * 32 : (start + len(paths)) * 32].hex()
        want = "".join(map(expected.get, paths, itertools.repeat(_ABSENT)))
        if want == actual:
            continue
        for i, path in enumerate(paths):
            got = actual[i * 64 : i * 64 + 64]
            sha = expected.get(path, _ABSENT)
            if sha != got:
                changes.append(Change(path, None if sha is _ABSENT else sha, got))
    missing = itertools.filterfalse(outside.__contains__, itertools.filterfalse(on_disk, expected))
    changes.extend(Change(path, expected[path], None) for path in missing)
    return sorted(changes, key=operator.attrgetter("path"))


class _Inside:
    """Whether a path's directory, symlinks resolved, is inside base (once per directory)."""

    def __init__(self, base: str) -> None:
        self.base = base
        self.real = os.path.realpath(base)
        self.known: dict[str, bool] = {"": True}

    def __call__(self, path: str) -> bool:
        folder = path.rpartition("/")[0]
        ok = self.known.get(folder)
        if ok is None:
            real = os.path.realpath(os.path.join(self.base, folder))
            ok = self.known[folder] = real == self.real or real.startswith(self.real + os.sep)
        return ok


def _drop_link_files(found: list[str], links: str, own: Collection[str], run_file: bool) -> None:
    """Drop the accepted link files (and RUN_ID when it names the run) from `found`, in place.

    `found` is sorted: only the run of paths under the links directory is looked at, not every
    listed file.
    """
    prefix = "" if links == "." else links + "/"
    start = bisect.bisect_left(found, prefix)
    end = start
    while end < len(found) and found[end].startswith(prefix):
        end += 1
    mine = set(own) | ({RUN_ID_FILE} if run_file else set())
    found[start:end] = [f for f in found[start:end] if f[len(prefix) :] not in mine]


def _names_run(links_dir: str, run_id: str | None) -> bool:
    """The links directory's RUN_ID holds `run_id` (a few bytes of text) and nothing else."""
    if not run_id:
        return False
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(os.path.join(links_dir, RUN_ID_FILE), flags)  # a FIFO must not block
    except OSError:
        return False
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # a directory, a FIFO, a device
            return False
        data = os.read(fd, len(run_id.encode()) + 2)
    except OSError:
        return False
    finally:
        os.close(fd)
    return data in (run_id.encode(), run_id.encode() + b"\n")  # as `pipeline start` writes it


def _regular(base: str, path: str) -> bool:
    """A regular file, not followed through a symlink (never opens it)."""
    try:
        return stat.S_ISREG(os.lstat(os.path.join(base, path)).st_mode)
    except OSError:
        return False


def _under(base: str, patterns: Sequence[str]) -> tuple[list[str], list[tuple[str, str]]]:
    """Every entry the product patterns claim.

    That is all of a pattern's directory (`models/*` claims `models/`), or for a pattern
    without one (`*.json`) the entries its regex matches.
    """
    compiled = compile_patterns(patterns)
    roots = sorted({p.root for p in compiled if p.root})
    found = walk_all(base, roots)
    files, refused = set(found.files), dict(found.refused)
    top = [p for p in compiled if not p.root]
    if top:
        everything = walk_all(base, ["."])
        files |= {f for f in everything.files if any(p.matches(f) for p in top)}
        refused |= {f: why for f, why in everything.refused if any(p.matches(f) for p in top)}
    return sorted(files), sorted(refused.items())
