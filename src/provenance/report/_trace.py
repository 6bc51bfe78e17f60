"""Lineage of one artifact: the step that produced it, from which materials, back to raw inputs.

With a signed layout the links are those verification accepted (signature, functionaries,
thresholds, one run, rules): verified lineage. Without one, every link in the directory is read
for display and the lineage is marked unverified: anyone could have written those files.
A material is traced to the step whose products hold the same path with the same sha256.
A dataset (a manifest the step recorded, described in its `environment.datasets`) is one node
with its source, member count, size and manifest digest, as the link records them; it can be
traced by its manifest path, the manifest's sha256, or its source (a directory or `s3://` prefix).
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from provenance._fs import load_json_bounded
from provenance.datasets import RecordedDataset, recorded_datasets
from provenance.errors import InputError, UsageError

_SHA256 = re.compile(r"(?:sha256:)?([0-9a-f]{64})\Z")


@dataclass(frozen=True)
class LinkRecord:
    """What the lineage needs from one link."""

    step: str
    file: str
    keyid: str
    command: tuple[str, ...]
    materials: dict[str, str]  # path -> sha256
    products: dict[str, str]
    datasets: tuple[RecordedDataset, ...] = ()

    def dataset(self, side: str, path: str) -> RecordedDataset | None:
        """The dataset this link records at manifest `path` on `side`, if it is one."""
        return next((d for d in self.datasets if d.side == side and d.manifest == path), None)


@dataclass
class Node:
    path: str
    sha256: str
    step: str | None = None  # None: a raw input (no step produced it)
    link: str | None = None
    keyid: str | None = None
    command: tuple[str, ...] = ()
    materials: list[Node] = field(default_factory=list)
    note: str = ""
    dataset: RecordedDataset | None = None  # the path is a dataset's manifest

    def to_dict(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"path": self.path, "sha256": self.sha256}
        if self.dataset is not None:
            doc["dataset"] = self.dataset.to_dict()
        if self.step is None:
            doc["raw_input"] = True
        else:
            doc.update(step=self.step, link=self.link, keyid=self.keyid, command=list(self.command))
            doc["materials"] = [m.to_dict() for m in self.materials]
        if self.note:
            doc["note"] = self.note
        return doc


@dataclass
class Lineage:
    target: str
    verified: bool
    source: str  # "verified with LAYOUT" | "unverified (no layout given)"
    roots: list[Node]
    raw_inputs: list[tuple[str, str]]
    on_disk: str = ""  # "matches" | "DIFFERS" | "deleted" | ""
    on_disk_step: str = ""  # the step whose digest it was compared with, when several made it
    models: list[dict[str, Any]] = field(default_factory=list)
    links: list[dict[str, str]] = field(default_factory=list)  # every link read: file, keyid, step
    raw_datasets: dict[tuple[str, str], RecordedDataset] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "verified": self.verified,
            "source": self.source,
            "on_disk": self.on_disk or None,
            "produced_by": [r.to_dict() for r in self.roots],
            "raw_inputs": [self._raw(p, s) for p, s in self.raw_inputs],
            "model_versions": self.models,
            "links": self.links,
        }

    def _raw(self, path: str, sha256: str) -> dict[str, Any]:
        doc: dict[str, Any] = {"path": path, "sha256": sha256}
        dataset = self.raw_datasets.get((path, sha256))
        if dataset is not None:
            doc["dataset"] = dataset.to_dict()
        return doc


def _shas(artifacts: Any) -> dict[str, str]:
    from provenance.links import ArtifactMap

    if isinstance(artifacts, ArtifactMap):
        return dict(artifacts.shas())
    if not isinstance(artifacts, dict):  # decoded for display only: anything may be there
        return {}
    return {
        str(p): str(d["sha256"])
        for p, d in artifacts.items()
        if isinstance(d, dict) and isinstance(d.get("sha256"), str)
    }


def verified_records(
    layout: str, layout_keys: Sequence[Any], links_dir: str, base: str
) -> list[LinkRecord]:
    """The links a verification of `layout` accepted; VerificationError when it fails."""
    return verified_chain(layout, layout_keys, links_dir, base)[0]


def verified_chain(
    layout: str, layout_keys: Sequence[Any], links_dir: str, base: str
) -> tuple[list[LinkRecord], dict[str, str]]:
    """`verified_records`, and path -> sha256 of the products the chain ends with.

    A path a later step replaced has its last digest; one a later step deleted is absent.
    """
    from provenance.errors import VerificationError
    from provenance.verification import expected_products, verify

    result = verify(layout, layout_keys, links_dir, base, check_files_on_disk=False)
    if not result.ok:
        why = (
            f"[{result.failures[0].phase}] {result.failures[0].summary()}"
            if result.failures
            else result.verdict
        )
        raise VerificationError(f"the chain does not verify, no lineage shown: {why}")
    records = [
        LinkRecord(
            step,
            lk.file,
            lk.keyid,
            tuple(lk.link.command),
            _shas(lk.link.materials),
            _shas(lk.link.products),
            tuple(recorded_datasets(lk.link.environment, lk.link.materials, lk.link.products)),
        )
        for step, lk in result.links.items()
    ]
    links = {step: lk.link for step, lk in result.links.items()}
    final = {p: sha for p, (sha, _) in expected_products(result.layout_obj, links).items()}
    return records, final


def unverified_records(links_dir: str) -> list[LinkRecord]:
    """Every link in `links_dir`, decoded for display only (signatures not checked)."""
    from provenance.links import list_links, read_envelope

    records = []
    for path in list_links(links_dir):
        _, env = read_envelope(path)
        doc = load_json_bounded(env.payload, path, what="link payload")
        if not isinstance(doc, dict) or doc.get("_type") != "link":
            raise InputError(path, "payload is not an in-toto link")
        command = doc.get("command")
        command = command if isinstance(command, list) else []
        environment = doc.get("environment")
        records.append(
            LinkRecord(
                str(doc.get("name")),
                os.path.basename(path),
                ",".join(k[:8] for k in env.keyids) or "(unsigned)",
                tuple(str(c) for c in command),
                _shas(doc.get("materials")),
                _shas(doc.get("products")),
                tuple(
                    recorded_datasets(
                        environment if isinstance(environment, dict) else {},
                        doc.get("materials"),
                        doc.get("products"),
                    )
                ),
            )
        )
    return records


def parse_target(target: str) -> tuple[str | None, str | None]:
    """(path, None) or (None, sha256) for a PATH_OR_SHA256 argument."""
    m = _SHA256.match(target.strip().lower())
    if m and not os.path.exists(target):
        return None, m.group(1)
    if not target or target.startswith("/") or ".." in target.split("/"):
        raise UsageError(f"'{target}': give a path relative to the project root, or a sha256")
    return target.removeprefix("./"), None


def _source_matches(dataset: RecordedDataset, target: str) -> bool:
    return dataset.source is not None and dataset.source.rstrip("/") == target.rstrip("/")


def trace(target: str, records: list[LinkRecord], *, verified: bool, source: str) -> Lineage:
    """The lineage of `target` (a path, a sha256, or a dataset's source) through `records`."""
    path, digest = parse_target(target)
    producers = [
        (r, p, s)
        for r in records
        for p, s in sorted(r.products.items())
        if (path is not None and p == path) or (digest is not None and s == digest)
    ]
    if not producers and path is not None:
        producers = [
            (r, d.manifest, d.sha256)
            for r in records
            for d in r.datasets
            if d.side == "products" and _source_matches(d, path)
        ]
    raw: dict[tuple[str, str], None] = {}
    raw_datasets: dict[tuple[str, str], RecordedDataset] = {}
    expanded: set[str] = set()  # a step's materials are the same for all its products: once

    def node(record: LinkRecord, p: str, s: str, seen: frozenset[tuple[str, str]]) -> Node:
        n = Node(p, s, record.step, record.file, record.keyid, record.command)
        n.dataset = record.dataset("products", p)
        if record.file in expanded:
            n.note = f"materials of '{record.step}' shown above"
            return n
        expanded.add(record.file)
        for mp, ms in sorted(record.materials.items()):
            src = next((r for r in records if r is not record and r.products.get(mp) == ms), None)
            if src is None:
                raw[(mp, ms)] = None
                dataset = record.dataset("materials", mp)
                if dataset is not None:
                    raw_datasets[(mp, ms)] = dataset
                n.materials.append(Node(mp, ms, dataset=dataset))
            elif (src.step, mp) in seen:
                n.materials.append(
                    Node(
                        mp,
                        ms,
                        src.step,
                        src.file,
                        note="cycle: already above",
                        dataset=src.dataset("products", mp),
                    )
                )
            else:
                n.materials.append(node(src, mp, ms, seen | {(src.step, mp)}))
        return n

    roots = [node(r, p, s, frozenset({(r.step, p)})) for r, p, s in producers]
    links = [{"file": r.file, "keyid": r.keyid, "step": r.step} for r in records]
    return Lineage(
        target, verified, source, roots, sorted(raw), links=links, raw_datasets=raw_datasets
    )


def on_disk(lineage: Lineage, base: str, final: Mapping[str, str] | None = None) -> None:
    """Compare the file on disk (when the target is a path that exists) with what was recorded.

    With several producers of the path (a later step modified it), the file is compared with
    the last one, the digest the chain ends with, never an earlier step's. `final` (from
    `verified_chain`) also knows the paths a later step deleted: such a file is "deleted".
    """
    if not lineage.roots or not os.path.isfile(os.path.join(base, lineage.roots[0].path)):
        return
    from provenance.hashing import hash_file

    path = lineage.roots[0].path
    producers = [r for r in lineage.roots if r.path == path]
    last = producers[-1]  # roots are in layout order
    if final is not None and path not in final:
        lineage.on_disk = "deleted"  # present, but the chain ends without it
        return
    full = os.path.join(base, path)
    actual = hash_file(full, full).hex()
    want = final[path] if final is not None else last.sha256
    lineage.on_disk = "matches" if actual == want else "DIFFERS"
    lineage.on_disk_step = (last.step or "") if len(producers) > 1 else ""


def model_versions(
    tracking_uri: str, model: str, gate_key: Any, digests: set[str]
) -> list[dict[str, Any]]:
    """Versions of `model` whose valid gate decision lists a file with one of `digests`.

    Only records the gate key signed for exactly that version and alias count (tags are
    otherwise untrusted input); a version without a verifiable record is not listed.
    """
    if "'" in model:
        raise UsageError(f"model name {model!r} contains a quote")
    from provenance.errors import VerificationError
    from provenance.gate import DECISION_PREFIX, Decision, open_record
    from provenance.gate.mlflow import MlflowRegistry, mlflow_errors

    registry = MlflowRegistry(tracking_uri)
    with mlflow_errors(f"listing versions of model '{model}'"):
        versions = registry.client.search_model_versions(f"name='{model}'")
    found = []
    for mv in versions:
        for key, value in sorted((mv.tags or {}).items()):
            if not key.startswith(DECISION_PREFIX):
                continue
            try:
                record = open_record(key, value, gate_key, model, str(mv.version))
            except VerificationError:
                continue
            if not isinstance(record, Decision) or not record.files:
                continue
            hits = sorted(p for p, s in record.files.items() if s in digests)
            if hits:
                found.append(
                    {
                        "model": model,
                        "version": str(mv.version),
                        "alias": record.alias,
                        "result": record.result,
                        "verified_at": record.verified_at,
                        "files": hits,
                    }
                )
    return sorted(found, key=lambda d: int(d["version"]) if d["version"].isdigit() else 0)
