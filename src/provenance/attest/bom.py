"""ML-BOM: a CycloneDX 1.6 document built only from a passed verification.

Everything in it comes from the `VerificationResult` (the verified links and the signed
layout's model declaration), never from re-reading the layout or links: the model as a
`machine-learning-model` component (one `file` component per model file, with sha256), its
model card (training parameters from the model step's link, the datasets it was trained on,
metrics), datasets as `data` components (materials no step produced; a dataset recorded as one
manifest is one `data` component named by its source, with its member count and size as the
step recorded them and the manifest's sha256 as its hash), source files, the git
commit and the base models it was fine-tuned from (pedigree), each step's Python packages
(`library` components with `pkg:pypi` purls in the formula) and the steps as a `formulation`
workflow with their inputs and outputs.

Metrics are the values the thresholds phase checked; besides those, a product named
`*metrics*.json` is read from the verified base directory only when its sha256 equals the
recorded one. The document is checked against the CycloneDX 1.6 JSON schema (cyclonedx-python-lib,
the `bom` extra) before it is returned.
"""

from __future__ import annotations

import datetime as dt
import fnmatch
import json
import os
import re
import uuid
from collections.abc import Iterable, Mapping
from functools import lru_cache
from typing import TYPE_CHECKING, Any

from provenance._fs import UTC_FORMAT
from provenance._version import __version__
from provenance.datasets import RecordedDataset, recorded_datasets
from provenance.errors import UsageError, VerificationError
from provenance.record import BaseModelRecord, base_models_of

if TYPE_CHECKING:
    from provenance.links import LinkData
    from provenance.verification import VerificationResult

SPEC_VERSION = "1.6"
PROPERTY = "ml-provenance:"
MAX_METRICS = 200
_PACKAGE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]{0,200})==([^\s=;]{1,100})\Z")
_CODE = ("*.py", "*.ipynb", "*.sh", "*.r", "*.R", "*.jl", "*.sql", "*.toml", "*.cfg", "*.txt")
_METRICS = ("*metrics*.json",)
_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\Z")
_S3_URL = re.compile(r"^s3://[A-Za-z0-9._~!$&'()*+,;=:@%/-]+\Z")  # a plain IRI as it stands


def _hashes(sha256: str) -> list[dict[str, str]]:
    return [{"alg": "SHA-256", "content": sha256}]


def _prop(name: str, value: Any) -> dict[str, str]:
    return {
        "name": PROPERTY + name,
        "value": value if isinstance(value, str) else json.dumps(value),
    }


def _ref(path: str, sha256: str) -> str:
    return f"artifact:{path}@sha256:{sha256}"


def _is_code(path: str) -> bool:
    return any(fnmatch.fnmatchcase(os.path.basename(path), p) for p in _CODE)


def _purl(name: str, version: str) -> str:
    from packageurl import PackageURL

    return str(PackageURL(type="pypi", name=name, version=version).to_string())


class _Artifacts:
    """Every (path, sha256) the verified links name, with the step that produced it (if any)."""

    def __init__(self, order: list[str], links: Mapping[str, LinkData]) -> None:
        self.producer: dict[tuple[str, str], str] = {}
        self.seen: dict[tuple[str, str], None] = {}
        for step in order:
            link = links[step]
            for path, digests in link.materials.items():
                self.seen.setdefault((path, digests["sha256"]))
            for path, digests in link.products.items():
                key = (path, digests["sha256"])
                self.seen.setdefault(key)
                self.producer.setdefault(key, step)


def _datasets(
    order: list[str], links: Mapping[str, LinkData]
) -> dict[tuple[str, str], RecordedDataset]:
    """(manifest path, sha256) -> the dataset, as the step that produced it describes it.

    A dataset no step produced (a raw input) is described by the first step that read it.
    """
    found: dict[tuple[str, str], RecordedDataset] = {}
    for side in ("products", "materials"):
        for step in order:
            link = links[step]
            for ds in recorded_datasets(link.environment, link.materials, link.products):
                if ds.side == side:
                    found.setdefault((ds.manifest, ds.sha256), ds)
    return found


def _dataset_component(ref: str, ds: RecordedDataset, step: str | None) -> dict[str, Any]:
    """One CycloneDX `data` component for a whole dataset; its hash is the manifest's sha256."""
    name = ds.source or ds.manifest
    facts = [
        _prop("dataset-manifest", ds.manifest),
        _prop("dataset-manifest-sha256", ds.sha256),
        _prop("dataset-kind", ds.kind or "unknown"),
    ]
    if ds.members is not None:
        facts.append(_prop("dataset-members", str(ds.members)))
    if ds.bytes is not None:
        facts.append(_prop("dataset-bytes", str(ds.bytes)))
    if ds.engine is not None:
        facts.append(_prop("dataset-hashed-by", ds.engine))
    contents: dict[str, Any] = {"properties": facts}
    if ds.source is not None and _S3_URL.match(ds.source):
        contents["url"] = ds.source
    members = "?" if ds.members is None else str(ds.members)
    comp: dict[str, Any] = {
        "type": "data",
        "bom-ref": ref,
        "name": name,
        "description": f"dataset of {members} members ({ds.size}) as the step recorded it: "
        f"one manifest artifact ({ds.manifest}) listing each member's path, size and sha256; "
        "the hash is the manifest's",
        "hashes": _hashes(ds.sha256),
        "data": [{"type": "dataset", "name": name, "contents": contents}],
        "properties": list(facts),
    }
    if step is not None:
        comp["properties"].append(_prop("produced-by", step))
    return comp


def _packages(link: LinkData) -> list[tuple[str, str]]:
    value = link.environment.get("packages")
    if not isinstance(value, list):
        return []
    out = []
    for item in value:
        m = _PACKAGE.match(item) if isinstance(item, str) else None
        if m:
            out.append((m.group(1), m.group(2)))
    return out


def _flatten(doc: Any, prefix: str = "") -> Iterable[tuple[str, float | int]]:
    if isinstance(doc, dict):
        for key, value in doc.items():
            yield from _flatten(value, f"{prefix}{key}.")
    elif isinstance(doc, (int, float)) and not isinstance(doc, bool):
        yield prefix[:-1], doc


def _metrics(result: VerificationResult, order: list[str]) -> list[dict[str, str]]:
    # Each entry: type (the metric), value (JSON text), file (where it was read).
    """Metrics the thresholds checked, then other recorded `*metrics*.json` products.

    Only products whose bytes in the verified base still have the recorded sha256.
    """
    from provenance.verification import load_metrics

    out: dict[tuple[str, str], str] = {}
    for t in result.thresholds:
        out[(str(t["metric"]), str(t["file"]))] = json.dumps(t["actual"])
    checked = {str(t["file"]) for t in result.thresholds}
    for step in order:
        for path, digests in result.links[step].link.products.items():
            if path in checked or not any(fnmatch.fnmatchcase(path, p) for p in _METRICS):
                continue
            doc, failure = load_metrics(
                os.path.join(result.base, *path.split("/")), path, digests["sha256"]
            )
            if failure is None:
                for name, value in _flatten(doc):
                    out.setdefault((name, path), json.dumps(value))
    return [
        {"type": name, "value": value, "file": file}
        for (name, file), value in list(out.items())[:MAX_METRICS]
    ]


def build_bom(result: VerificationResult) -> dict[str, Any]:
    """The CycloneDX 1.6 ML-BOM of a passed verification (VerificationError when it failed).

    Raises UsageError when the layout declares no model or cyclonedx-python-lib is missing.
    """
    from provenance.verification import model_manifest

    if not result.ok or not result.links:
        raise VerificationError(f"no BOM for a chain that did not verify: {result.verdict}")
    if result.model is None:
        raise UsageError(
            f"layout {result.layout} declares no model (`model: {{step: …, products: …}}`), "
            "so the BOM has no model component"
        )
    order = [s.name for s in result.layout_obj.steps if s.name in result.links]
    links = {step: result.links[step].link for step in order}
    artifacts = _Artifacts(order, links)
    model_step, root = result.model.step, result.model.root
    model_files = model_manifest(result.model, links).files
    model_refs = {_ref(root + name, sha) for name, sha in model_files.items()}

    base_models = _BaseModels(order, result, artifacts, model_step)
    datasets = _datasets(order, links)
    components: list[dict[str, Any]] = list(base_models.others)
    for path, sha in artifacts.seen:
        ref = _ref(path, sha)
        if ref in model_refs or (path, sha) in base_models.files:
            continue
        step = artifacts.producer.get((path, sha))
        if (path, sha) in datasets:
            components.append(_dataset_component(ref, datasets[(path, sha)], step))
            continue
        code = step is None and _is_code(path)
        comp: dict[str, Any] = {
            "type": "file" if code else "data",
            "bom-ref": ref,
            "name": path,
            "hashes": _hashes(sha),
        }
        if not code:
            kind = "other" if any(fnmatch.fnmatchcase(path, p) for p in _METRICS) else "dataset"
            comp["data"] = [{"type": kind, "name": path}]
        if step is not None:
            comp["properties"] = [_prop("produced-by", step)]
        components.append(comp)

    model_link = links[model_step]
    trained_on = [
        _ref(path, d["sha256"])
        for path, d in sorted(model_link.materials.items())
        if not _is_code(path)
        and (path, d["sha256"]) in artifacts.seen
        and (path, d["sha256"]) not in base_models.files
    ]
    commits = sorted(
        {
            str(links[s].environment["git_commit"])
            for s in order
            if links[s].environment.get("git_commit")
        }
    )
    card: dict[str, Any] = {
        "bom-ref": "model-card",
        "modelParameters": {"datasets": [{"ref": ref} for ref in trained_on]},
    }
    metrics = _metrics(result, order)
    if metrics:
        card["quantitativeAnalysis"] = {
            "performanceMetrics": [{"type": m["type"], "value": m["value"]} for m in metrics]
        }
    params = model_link.environment.get("parameters")  # JSON text, as the link records it
    card_props = [_prop("model-step", model_step)]
    if isinstance(params, str):
        card_props.append(_prop("training-parameters", params))
    if metrics:
        card_props.append(_prop("metrics-files", sorted({m.pop("file") for m in metrics})))
    card["properties"] = card_props
    model: dict[str, Any] = {
        "type": "machine-learning-model",
        "bom-ref": "model",
        "name": os.path.basename(result.model.root.rstrip("/")) or model_step,
        "description": f"the products of step '{model_step}' matching "
        f"'{result.model.products}', as the signed layout declares",
        "components": [
            {
                "type": "file",
                "bom-ref": _ref(root + name, sha),
                "name": name,
                "hashes": _hashes(sha),
            }
            for name, sha in sorted(model_files.items())
        ],
        "modelCard": card,
    }
    pedigree: dict[str, Any] = {}
    if base_models.ancestors:
        pedigree["ancestors"] = base_models.ancestors
    if commits:
        pedigree["commits"] = [{"uid": c} for c in commits]
    if pedigree:
        model["pedigree"] = pedigree

    libraries: dict[str, dict[str, Any]] = {}
    tasks = []
    for step in order:
        tasks.append(_task(step, result.links[step], artifacts, libraries))
    workflow: dict[str, Any] = {
        "bom-ref": "workflow",
        "uid": result.run_id or "unknown",
        "name": "pipeline run",
        "taskTypes": ["build"],
        "tasks": tasks,
    }
    deps = _task_dependencies(order, links, artifacts)
    if deps:
        workflow["taskDependencies"] = deps
    doc: dict[str, Any] = {
        "bomFormat": "CycloneDX",
        "specVersion": SPEC_VERSION,
        "serialNumber": uuid.uuid4().urn,
        "version": 1,
        "metadata": {
            "timestamp": dt.datetime.now(dt.timezone.utc).strftime(UTC_FORMAT),
            "tools": {
                "components": [
                    {"type": "application", "name": "ml-provenance", "version": __version__}
                ]
            },
            "component": model,
            "properties": [
                _prop("layout", os.path.basename(result.layout)),
                _prop("layout-sha256", str(result.layout_sha256)),
                _prop("pipeline-run-id", result.run_id or ""),
            ],
        },
        "components": components,
        "dependencies": [{"ref": "model", "dependsOn": base_models.refs() + trained_on}],
        "formulation": [
            {
                "bom-ref": "formula",
                "components": sorted(libraries.values(), key=lambda c: c["bom-ref"]),
                "workflows": [workflow],
            }
        ],
    }
    validate(doc)
    return doc


class _BaseModels:
    """Base models the verified links record (OMS-verified at record time) as ML components.

    Those the model step or a step upstream of it consumed are the model's pedigree ancestors
    (it was fine-tuned from them); others (say, a judge model used by an evaluation) are plain
    `machine-learning-model` components. Each holds its files, as the consuming link recorded
    them, so the generic data components leave them out.
    """

    def __init__(
        self, order: list[str], result: VerificationResult, artifacts: _Artifacts, model_step: str
    ) -> None:
        self.files: set[tuple[str, str]] = set()
        self.ancestors: list[dict[str, Any]] = []
        self.others: list[dict[str, Any]] = []
        upstream = _upstream(model_step, order, result, artifacts)
        built: dict[str, dict[str, Any]] = {}
        for step in order:
            verified = result.links[step]
            for record in base_models_of(verified.link, verified.file):
                ref = f"base-model:{record.prefix}@sha256:{record.manifest_sha256}"
                comp = built.get(ref)
                if comp is None:
                    comp = built[ref] = self._component(ref, record, verified.link)
                    (self.ancestors if step in upstream else self.others).append(comp)
                elif step in upstream and comp in self.others:
                    self.others.remove(comp)
                    self.ancestors.append(comp)
                comp["properties"].append(_prop("consumed-by", step))

    def refs(self) -> list[str]:
        """The ancestors' bom-refs: the model depends on what it was fine-tuned from."""
        return [str(a["bom-ref"]) for a in self.ancestors]

    def _component(self, ref: str, record: BaseModelRecord, link: LinkData) -> dict[str, Any]:
        files = []
        for path, digests in sorted(link.materials.items()):
            key = (path, digests["sha256"])
            if path.startswith(record.prefix) and key not in self.files:
                self.files.add(key)
                files.append(
                    {
                        "type": "file",
                        "bom-ref": _ref(*key),
                        "name": path.removeprefix(record.prefix),
                        "hashes": _hashes(key[1]),
                    }
                )
        comp: dict[str, Any] = {
            "type": "machine-learning-model",
            "bom-ref": ref,
            "name": record.path,
            "description": "base model, verified against its OpenSSF Model Signing signature "
            "when the consuming step was recorded; the hash is the OMS manifest digest",
            "hashes": _hashes(record.manifest_sha256),
            "properties": [
                _prop("oms-signature", record.signature),
                _prop("oms-signature-sha256", record.signature_sha256),
                _prop("oms-public-key-sha256", record.public_key_sha256),
                _prop("oms-files", str(record.files)),
                _prop("model-signing-version", record.model_signing),
            ],
        }
        if files:
            comp["components"] = files
        return comp


def _upstream(
    model_step: str, order: list[str], result: VerificationResult, artifacts: _Artifacts
) -> set[str]:
    """The model step and every step whose recorded products it (transitively) consumed."""
    seen, todo = {model_step}, [model_step]
    while todo:
        link = result.links[todo.pop()].link
        for path, digests in link.materials.items():
            producer = artifacts.producer.get((path, digests["sha256"]))
            if producer is not None and producer not in seen and producer in order:
                seen.add(producer)
                todo.append(producer)
    return seen


def _task(
    step: str, verified: Any, artifacts: _Artifacts, libraries: dict[str, dict[str, Any]]
) -> dict[str, Any]:
    link: LinkData = verified.link
    env = link.environment
    refs = []
    for name, version in _packages(link):
        purl = _purl(name, version)
        libraries.setdefault(
            purl,
            {"type": "library", "bom-ref": purl, "name": name, "version": version, "purl": purl},
        )
        refs.append({"ref": purl})
    task: dict[str, Any] = {
        "bom-ref": f"task:{step}",
        "uid": step,
        "name": step,
        "taskTypes": ["build"],
    }
    if refs:
        task["resourceReferences"] = refs
    inputs = [
        {"resource": {"ref": _ref(p, d["sha256"])}} for p, d in sorted(link.materials.items())
    ]
    outputs = [
        {"resource": {"ref": _ref(p, d["sha256"])}, "type": "artifact"}
        for p, d in sorted(link.products.items())
    ]
    if inputs:
        task["inputs"] = inputs
    if outputs:
        task["outputs"] = outputs
    for field, key in (("started_on", "timeStart"), ("finished_on", "timeEnd")):
        value = env.get(field)
        if isinstance(value, str) and _TIME.match(value):
            task[key] = value
    props = [
        _prop("command", link.command),
        _prop("link", verified.file),
        _prop("link-sha256", verified.sha256),
        _prop("signed-by", verified.keyid),
    ]
    for field in ("git_commit", "python", "platform", "packages_sha256"):
        if isinstance(env.get(field), str):
            props.append(_prop(field, env[field]))
    task["properties"] = props
    return task


def _task_dependencies(
    order: list[str], links: Mapping[str, LinkData], artifacts: _Artifacts
) -> list[dict[str, Any]]:
    """A step depends on the steps whose recorded products it consumed (same path and digest)."""
    out = []
    for step in order:
        producers = {
            artifacts.producer[(p, d["sha256"])]
            for p, d in links[step].materials.items()
            if artifacts.producer.get((p, d["sha256"]), step) != step
        }
        if producers:
            out.append(
                {"ref": f"task:{step}", "dependsOn": [f"task:{s}" for s in order if s in producers]}
            )
    return out


@lru_cache(maxsize=1)
def _validator() -> Any:
    try:
        from cyclonedx.schema import SchemaVersion
        from cyclonedx.validation.json import JsonStrictValidator
    except ImportError:
        raise UsageError(
            "the ML-BOM needs cyclonedx-python-lib: pip install 'ml-provenance[bom]'"
        ) from None
    return JsonStrictValidator(SchemaVersion.V1_6)


def validate(doc: Mapping[str, Any]) -> None:
    """Refuse (VerificationError) a document the CycloneDX 1.6 JSON schema does not accept."""
    error = _validator().validate_str(json.dumps(doc))
    if error is not None:
        data = getattr(error, "data", None)
        where = "/".join(str(p) for p in getattr(data, "absolute_path", ()))
        message = getattr(data, "message", str(error).splitlines()[0])
        raise VerificationError(f"the ML-BOM is not valid CycloneDX 1.6 at '{where}': {message}")
