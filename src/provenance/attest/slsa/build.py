"""SLSA v1 provenance for a trained model: an in-toto Statement v1 built from a verified chain.

buildType `BUILD_TYPE` is defined in docs/slsa.md. Subjects are the weight files; resolved
dependencies are what the pipeline consumed but did not produce (datasets, code, base weights)
plus the source commit; the links themselves are byproducts. Everything comes from a passed
`VerificationResult` (its exact link and layout bytes). The one thing read from disk, the
subjects, must be products a verified step recorded with the same digest.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from provenance._fs import utc_now
from provenance._github import context as github_context
from provenance.attest._resource import ResourceDescriptor
from provenance.attest.slsa_provenance import SlsaProvenance
from provenance.attest.statement import Statement, Subject
from provenance.errors import UsageError, VerificationError
from provenance.hashing import hash_artifacts, objects
from provenance.links import LinkData
from provenance.record import base_models_of
from provenance.signing import dsse

if TYPE_CHECKING:
    from provenance.verification import VerificationResult

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


def _subjects_the_chain_produced(
    digests: Mapping[str, str], verification: VerificationResult, links: Sequence[LinkData]
) -> dict[str, str]:
    """Subject name -> sha256: each a product the verified chain ends with, with that digest.

    The subject patterns select files on disk; a file planted after the run, changed since
    verify read it, or put back to a digest a later step replaced, must not be signed as an
    output of the verified build. A product the chain kept in an object store, fetched to the
    path its key ends with, is signed under its object URI (the name the chain gave it), and
    only when exactly one final object ends with that path.
    """
    from provenance.verification import expected_products

    final = expected_products(verification.layout_obj, {lk.name: lk for lk in links})
    stored = [(uri, sha) for uri, (sha, _) in final.items() if objects.is_object_uri(uri)]
    named: dict[str, str] = {}
    for path, digest in sorted(digests.items()):
        if path in final:
            sha, step = final[path]
            if digest != sha:
                raise VerificationError(
                    f"subject '{path}': sha256 {digest[:12]}… on disk, but the verified chain "
                    f"ends with {sha[:12]}… (recorded by step '{step}')"
                )
            named[path] = digest
            continue
        fetched = [uri for uri, _ in stored if uri.endswith("/" + path)]
        if len(fetched) == 1:
            sha = dict(stored)[fetched[0]]
            if digest != sha:
                raise VerificationError(
                    f"subject '{path}': sha256 {digest[:12]}… on disk, but the verified chain "
                    f"ends with {sha[:12]}… for {fetched[0]}"
                )
            named[fetched[0]] = digest
            continue
        earlier = next((lk.name for lk in links if path in lk.products), None)
        raise VerificationError(
            f"subject '{path}' (sha256 {digest[:12]}…) is "
            + (
                f"a product of step '{earlier}' that a later step replaced or deleted"
                if earlier
                else f"a name {len(fetched)} verified objects end with"
                if len(fetched) > 1
                else "not a product of any verified step"
            )
            + ": only what the chain ends with is signed"
        )
    return named


def build_statement(
    subjects: Sequence[str],
    verification: VerificationResult,
    base: str = ".",
    *,
    builder_id: str | None = None,
    repository: str | None = None,
    ref: str | None = None,
) -> Statement[SlsaProvenance]:
    """The SLSA v1 statement for the files `subjects` select, from a passed verification.

    Built as the typed `Statement`/`SlsaProvenance` the attestation layer reads back, so what
    is signed is validated exactly as what is verified (in-toto-attestation's checks too).
    """
    if not verification.ok or not verification.links:
        raise UsageError(f"the chain did not verify: {verification.verdict}")
    hashed = hash_artifacts(base, subjects)
    if not hashed.digests:
        raise UsageError(f"--subject {' '.join(subjects)} matched no file in {base}")
    verified = list(verification.links.values())
    links = [v.link for v in verified]
    produced = _subjects_the_chain_produced(hashed.digests, verification, links)
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
    now = utc_now()
    where = "slsa attest"
    predicate = SlsaProvenance(
        build_type=BUILD_TYPE,
        builder_id=builder_id or (gh.builder_id if gh else DEFAULT_BUILDER),
        external_parameters={k: v for k, v in external.items() if v is not None},
        internal_parameters={
            "pipelineRunIds": run_ids,
            "python": sorted({str(e.get("python")) for e in envs if e.get("python")}),
            "packagesSha256": sorted(
                {str(e["packages_sha256"]) for e in envs if e.get("packages_sha256")}
            ),
        },
        resolved_dependencies=tuple(
            ResourceDescriptor.from_dict(d, f"resolvedDependencies[{i}]", where)
            for i, d in enumerate(deps)
        ),
        invocation_id=gh.invocation_id if gh else (run_ids[0] if run_ids else now),
        started_on=times[0] if times else now,
        finished_on=times[-1] if times else now,
        byproducts=tuple(
            ResourceDescriptor(
                name=lk.file,
                digest={"sha256": lk.sha256},
                media_type="application/vnd.in-toto+dsse",
            )
            for lk in verified
        ),
    )
    subjects_ = tuple(Subject(p, {"sha256": d}) for p, d in sorted(produced.items()))
    return Statement(subjects_, predicate)


def sign_with_key(statement: Statement[SlsaProvenance], signer: Any) -> bytes:
    """DSSE envelope (one JSON line, `.intoto.jsonl` style) over the canonical statement."""
    return dsse.dumps(statement.sign(signer)) + b"\n"


def sign_with_sigstore(statement: Statement[SlsaProvenance], token: str) -> bytes:
    """A Sigstore bundle over the canonical statement, signed with the identity `token`.

    Build the statement with `builder_id=signing.sigstore.signing_workflow(token)`: the
    builder a verifier accepts is the workflow the certificate names.
    """
    from provenance.signing import sigstore

    return sigstore.sign_dsse(statement.to_json(), token)
