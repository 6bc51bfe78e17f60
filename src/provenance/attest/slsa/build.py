"""SLSA v1 provenance for a trained model: an in-toto Statement v1 built from a verified chain.

buildType `BUILD_TYPE` is defined in docs/slsa.md. Subjects are the weight files; resolved
dependencies are what the pipeline consumed but did not produce (datasets, code, base weights)
plus the source commit; the links themselves are byproducts. Everything comes from a passed
`VerificationResult` (its exact link and layout bytes); nothing is re-read from disk.
"""

from __future__ import annotations

import datetime as dt
import json
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from provenance._fs import canonical_json
from provenance._github import context as github_context
from provenance.errors import UsageError
from provenance.hashing import hash_artifacts
from provenance.links import LinkData
from provenance.record import base_models_of
from provenance.signing import dsse

if TYPE_CHECKING:
    from provenance.verification import VerificationResult

STATEMENT_TYPE = "https://in-toto.io/Statement/v1"
PREDICATE_TYPE = "https://slsa.dev/provenance/v1"
BUILD_TYPE = "https://github.com/ml-provenance/ml-provenance/blob/main/docs/slsa.md#buildtype-v1"
DEFAULT_BUILDER = "https://github.com/ml-provenance/ml-provenance/builders/local@v1"


def _parameters(value: Any) -> Any:
    """Links carry parameters as JSON text (in-toto cannot canonicalise floats); unpack it."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except json.JSONDecodeError:
            return value
    return value


def _external_inputs(links: Sequence[LinkData]) -> list[dict[str, Any]]:
    """Materials no link produced with the same digest: the pipeline's inputs from outside."""
    produced = {(p, d.get("sha256")) for lk in links for p, d in lk.products.items()}
    seen: dict[str, Mapping[str, str]] = {}
    for lk in links:
        for path, digests in lk.materials.items():
            if (path, digests.get("sha256")) not in produced:
                seen.setdefault(path, digests)
    return [{"name": p, "digest": dict(d)} for p, d in sorted(seen.items())]


def build_statement(
    subjects: Sequence[str],
    verification: VerificationResult,
    base: str = ".",
    *,
    builder_id: str | None = None,
    repository: str | None = None,
    ref: str | None = None,
) -> dict[str, Any]:
    """The SLSA v1 statement for the files `subjects` select, from a passed verification."""
    if not verification.ok or not verification.links:
        raise UsageError(f"the chain did not verify: {verification.verdict}")
    hashed = hash_artifacts(base, subjects)
    if not hashed.digests:
        raise UsageError(f"--subject {' '.join(subjects)} matched no file in {base}")
    verified = list(verification.links.values())
    links = [v.link for v in verified]
    gh = github_context()
    envs = [lk.environment for lk in links]
    commit = next((e.get("git_commit") for e in envs if e.get("git_commit")), None)
    repository = repository or (gh.repository_uri if gh else None)
    ref = ref or (gh.ref if gh else None)
    external: dict[str, Any] = {
        "repository": repository,
        "ref": ref,
        "workflow": gh.workflow_ref if gh else None,
        "steps": {lk.name: _parameters(lk.environment.get("parameters")) for lk in links},
    }
    external["layout"] = {
        "name": os.path.basename(verification.layout),
        "digest": {"sha256": verification.layout_sha256},
    }
    deps = _external_inputs(links)
    for v in verified:  # base models verified against their OMS signature at record time
        for model in base_models_of(v.link, v.file):
            dep = model.as_resolved_dependency()
            if dep not in deps:
                deps.append(dep)
    if commit:
        uri = f"git+{repository}@{ref}" if repository else "git+local"
        deps.insert(0, {"uri": uri, "digest": {"gitCommit": commit}})
    run_ids = sorted({str(e.get("pipeline_run_id")) for e in envs if e.get("pipeline_run_id")})
    times = sorted(t for e in envs for t in (e.get("started_on"), e.get("finished_on")) if t)
    now = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    metadata: dict[str, Any] = {
        "invocationId": gh.invocation_id if gh else (run_ids[0] if run_ids else now),
        "startedOn": times[0] if times else now,
        "finishedOn": times[-1] if times else now,
    }
    return {
        "_type": STATEMENT_TYPE,
        "subject": [
            {"name": p, "digest": {"sha256": d}} for p, d in sorted(hashed.digests.items())
        ],
        "predicateType": PREDICATE_TYPE,
        "predicate": {
            "buildDefinition": {
                "buildType": BUILD_TYPE,
                "externalParameters": {k: v for k, v in external.items() if v is not None},
                "internalParameters": {
                    "pipelineRunIds": run_ids,
                    "python": sorted({str(e.get("python")) for e in envs if e.get("python")}),
                    "packagesSha256": sorted(
                        {str(e["packages_sha256"]) for e in envs if e.get("packages_sha256")}
                    ),
                },
                "resolvedDependencies": deps,
            },
            "runDetails": {
                "builder": {"id": builder_id or (gh.builder_id if gh else DEFAULT_BUILDER)},
                "metadata": metadata,
                "byproducts": [
                    {
                        "name": lk.file,
                        "digest": {"sha256": lk.sha256},
                        "mediaType": "application/vnd.in-toto+dsse",
                    }
                    for lk in verified
                ],
            },
        },
    }


def sign_with_key(statement: dict[str, Any], signer: Any) -> bytes:
    """DSSE envelope (one JSON line, `.intoto.jsonl` style)."""
    return dsse.dumps(dsse.sign(canonical_json(statement), signer)) + b"\n"


def sign_with_sigstore(statement: dict[str, Any]) -> bytes:
    """A Sigstore bundle over the statement, signed with the ambient OIDC identity.

    The builder id a verifier accepts is the workflow that signs: it is set from the identity
    token (`provenance.signing.sigstore.signing_workflow`) before signing.
    """
    from provenance.signing import sigstore

    token = sigstore.ambient_token()
    builder = sigstore.signing_workflow(token)
    if builder is not None:
        statement["predicate"]["runDetails"]["builder"]["id"] = builder
    return sigstore.sign_dsse(canonical_json(statement), token)


def decode_statement(payload: bytes, source: str) -> dict[str, Any]:
    from provenance.errors import InputError

    try:
        doc = json.loads(payload)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):
        raise InputError(source, "signed payload is not JSON") from None
    if not isinstance(doc, dict) or doc.get("_type") not in (
        STATEMENT_TYPE,
        "https://in-toto.io/Statement/v0.1",
    ):
        raise InputError(source, "signed payload is not an in-toto Statement")
    return doc
