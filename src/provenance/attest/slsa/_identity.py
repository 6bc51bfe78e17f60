"""What a signature proves, and what the statement only claims.

A Sigstore certificate issued to a GitHub workflow proves who signed (the Build Signer URI: the
workflow file and ref that ran, reusable workflows included) and the facts Fulcio copied from
GitHub's OIDC token (source repository, ref, commit, trigger, runner environment, the calling
workflow as Build Config URI). The statement inside is written by whoever held that identity:
its builder id, workflow, commit and inputs are claims until compared with the certificate.

Rules (issue: a statement signed by workflow A naming builder B passed and was printed as fact):
- the builder id the statement names must be the signing workflow (slsa-verifier's
  `MatchesFull(..., allowRef=true)`), or one of the runner ids GitHub's artifact attestations
  write (`https://github.com/actions/runner/github-hosted` / `self-hosted`), which must agree
  with the certificate's Runner Environment; anything else is refused, naming both;
- a workflow the statement names (v1 `externalParameters.workflow`, v0.2 `configSource`) must be
  the certificate's Build Config URI (repository, path and ref) and source repository;
- the commit, trigger and run the statement names must be the certificate's where both say.
Key-signed statements prove only the key: every field is that key holder's claim.
"""

from __future__ import annotations

from typing import Any

from cryptography import x509
from cryptography.x509 import ObjectIdentifier

from provenance.attest.slsa import _policy
from provenance.attest.slsa._result import Failure

SLSA_V1 = "https://slsa.dev/provenance/v1"
# The builder ids GitHub artifact attestations write: `${server}/actions/runner/${environment}`.
RUNNER_IDS = {
    "https://github.com/actions/runner/github-hosted": "github-hosted",
    "https://github.com/actions/runner/self-hosted": "self-hosted",
}
# Fulcio's OIDs (https://github.com/sigstore/fulcio/blob/main/docs/oid-info.md): (v2, v1).
FULCIO: dict[str, tuple[ObjectIdentifier, ObjectIdentifier | None]] = {
    "issuer": (_policy.OID_ISSUER_V2, _policy.OID_ISSUER_V1),
    "signer_digest": (ObjectIdentifier("1.3.6.1.4.1.57264.1.10"), None),
    "runner_environment": (_policy.OID_RUNNER_V2, None),
    "source_repository": (_policy.OID_REPO_V2, _policy.OID_REPO_V1),
    "source_commit": (
        ObjectIdentifier("1.3.6.1.4.1.57264.1.13"),
        ObjectIdentifier("1.3.6.1.4.1.57264.1.3"),
    ),
    "source_ref": (_policy.OID_REF_V2, _policy.OID_REF_V1),
    "build_config": (ObjectIdentifier("1.3.6.1.4.1.57264.1.18"), None),
    "trigger": (
        ObjectIdentifier("1.3.6.1.4.1.57264.1.20"),
        ObjectIdentifier("1.3.6.1.4.1.57264.1.2"),
    ),
    "run_invocation": (ObjectIdentifier("1.3.6.1.4.1.57264.1.21"), None),
}


def certificate_facts(cert: x509.Certificate) -> dict[str, str]:
    """Everything the (already verified) certificate states, by name; absent ones left out."""
    facts: dict[str, str] = {}
    signer = _policy.identity(cert)
    if signer:
        facts["signer"] = signer
    for name, (v2, v1) in FULCIO.items():
        value = _policy.extension(cert, v2, v1)
        if value:
            facts[name] = value
    return facts


def _dig(doc: Any, *keys: str) -> Any:
    for key in keys:
        doc = doc.get(key) if isinstance(doc, dict) else None
    return doc


def builder_claim(statement: dict[str, Any]) -> Any:
    """The builder id the statement names (v1 `runDetails.builder.id`, v0.2 `builder.id`)."""
    pred = statement.get("predicate")
    if statement.get("predicateType") == SLSA_V1:
        return _dig(pred, "runDetails", "builder", "id")
    return _dig(pred, "builder", "id")


def builder_is_signer(builder: str, signer: str) -> bool:
    """slsa-verifier `TrustedBuilderID.MatchesFull(builder, allowRef=true)` against the signer.

    The names must be equal and so must the refs, except that a short tag (`@v2.1.0`) equals
    the signer's `refs/tags/v2.1.0`. A builder id without a ref never equals a signer with one.
    """
    name, at, version = builder.partition("@")
    want_name, _, want_ref = signer.partition("@")
    if name != want_name or (at and not version) or "@" in version:
        return False
    return version == want_ref or f"refs/tags/{version}" == want_ref


def check_builder(
    statement: dict[str, Any], facts: dict[str, str], *, runner_ok: bool
) -> list[Failure]:
    """The statement's builder id against the signing identity (certificate-signed only)."""
    signer = facts.get("signer", "")
    builder = builder_claim(statement)
    if not isinstance(builder, str) or not builder:
        return [Failure("builder id in the statement (vs the signing workflow)", signer, None)]
    if builder_is_signer(builder, signer):
        return []
    if runner_ok and builder in RUNNER_IDS:
        runner = facts.get("runner_environment")
        if runner is not None and runner != RUNNER_IDS[builder]:
            return [
                Failure(
                    "runner the statement names (vs the certificate's Runner Environment)",
                    runner,
                    RUNNER_IDS[builder],
                )
            ]
        return []
    return [
        Failure(
            "builder id the statement names (vs the workflow that signed it)",
            signer if not runner_ok else f"{signer} (or a GitHub runner id)",
            builder,
        )
    ]


def _workflow_claim(statement: dict[str, Any]) -> tuple[Any, Any, Any] | None:
    """(repository, path, ref) of the workflow the statement names, or None if it names none.

    Three shapes: GitHub's buildType (`externalParameters.workflow` = {repository, path,
    ref}); this project's own statements (`externalParameters.workflow` = `ORG/REPO/PATH@REF`,
    GITHUB_WORKFLOW_REF); v0.2 (`invocation.configSource` uri@ref + entryPoint).
    """
    pred = statement.get("predicate")
    if statement.get("predicateType") == SLSA_V1:
        workflow = _dig(pred, "buildDefinition", "externalParameters", "workflow")
        if workflow is None:
            return None
        if isinstance(workflow, str):
            url, at, ref = _policy.workflow_url(workflow).partition("@")
            parts = url.split("/", 5)  # https: '' host org repo path
            if not at or len(parts) < 6:
                return (workflow, None, None)
            return "/".join(parts[:5]), parts[5], ref
        if not isinstance(workflow, dict):
            return ("<not an object>", None, None)
        return workflow.get("repository"), workflow.get("path"), workflow.get("ref")
    source = _dig(pred, "invocation", "configSource")
    if source is None:
        return None
    uri = source.get("uri") if isinstance(source, dict) else None
    if not isinstance(uri, str):
        return (uri, None, None)
    repo, _, ref = uri.removeprefix("git+").partition("@")
    return repo, _dig(source, "entryPoint"), ref or None


def check_workflow(statement: dict[str, Any], facts: dict[str, str]) -> list[Failure]:
    """The workflow the statement names is the certificate's Build Config URI and repository."""
    claim = _workflow_claim(statement)
    failures = _check_repository_ref(statement, facts)
    if claim is None:
        return failures
    repo, path, ref = claim
    if not all(isinstance(x, str) and x for x in claim):
        return [
            *failures,
            Failure(
                "workflow in the statement (repository, path, ref)",
                facts.get("build_config"),
                f"{repo!r}, {path!r}, {ref!r}",
            ),
        ]
    named = f"{_policy.repo_url(str(repo))}/{str(path).lstrip('/')}@{ref}"
    config = facts.get("build_config")
    if config is None:
        # Without the Build Config URI the path cannot be compared: a claim that cannot be
        # checked is refused, never passed on.
        failures.append(
            Failure(
                "workflow in the statement (the certificate has no Build Config URI to check it)",
                "a certificate with a Build Config URI",
                named,
            )
        )
    elif named != config:
        failures.append(Failure("workflow in the statement (vs Build Config URI)", config, named))
    cert_repo = facts.get("source_repository")
    if cert_repo and _policy.normalize_repo(str(repo)) != _policy.normalize_repo(cert_repo):
        failures.append(
            Failure(
                "source repository in the statement (vs the certificate)",
                _policy.repo_url(cert_repo),
                _policy.repo_url(str(repo)),
            )
        )
    return failures


def _check_repository_ref(statement: dict[str, Any], facts: dict[str, str]) -> list[Failure]:
    """This project's own v1 statements: `externalParameters.repository` / `ref`."""
    if statement.get("predicateType") != SLSA_V1:
        return []
    ext = _dig(statement.get("predicate"), "buildDefinition", "externalParameters")
    failures = []
    repo, ref = _dig(ext, "repository"), _dig(ext, "ref")
    cert_repo, cert_ref = facts.get("source_repository"), facts.get("source_ref")
    if repo is not None and (
        not isinstance(repo, str)
        or cert_repo is None
        or _policy.normalize_repo(repo) != _policy.normalize_repo(cert_repo)
    ):
        failures.append(
            Failure("source repository in the statement (vs the certificate)", cert_repo, str(repo))
        )
    if ref is not None and ref != cert_ref:
        failures.append(
            Failure("source ref in the statement (vs the certificate)", cert_ref, str(ref))
        )
    return failures


def commit_claim(statement: dict[str, Any]) -> Any:
    """The source commit the statement names, if any (v1: the first gitCommit dependency)."""
    pred = statement.get("predicate")
    if statement.get("predicateType") == SLSA_V1:
        deps = _dig(pred, "buildDefinition", "resolvedDependencies")
        commits = [_dig(d, "digest", "gitCommit") for d in deps] if isinstance(deps, list) else []
        return next((c for c in commits if c is not None), None)
    return _dig(pred, "invocation", "configSource", "digest", "sha1")


def _github_context(statement: dict[str, Any]) -> dict[str, Any]:
    """The GitHub context the statement records (v1 internalParameters, v0.2 environment)."""
    pred = statement.get("predicate")
    if statement.get("predicateType") == SLSA_V1:
        ctx = _dig(pred, "buildDefinition", "internalParameters", "github")
        if not isinstance(ctx, dict):  # slsa-github-generator v1: upper-case keys at the top
            ctx = _dig(pred, "buildDefinition", "internalParameters")
    else:
        ctx = _dig(pred, "invocation", "environment")
    return {str(k).lower(): v for k, v in ctx.items()} if isinstance(ctx, dict) else {}


def check_context(statement: dict[str, Any], facts: dict[str, str]) -> list[Failure]:
    """Commit, trigger and run invocation named by the statement, against the certificate."""
    failures = []
    commit = commit_claim(statement)
    cert_commit = facts.get("source_commit")
    if commit is not None and cert_commit is not None and commit != cert_commit:
        failures.append(
            Failure("source commit in the statement (vs the certificate)", cert_commit, str(commit))
        )
    ctx = _github_context(statement)
    event = ctx.get("event_name", ctx.get("github_event_name"))
    cert_trigger = facts.get("trigger")
    if event is not None and cert_trigger is not None and event != cert_trigger:
        failures.append(
            Failure("trigger in the statement (vs the certificate)", cert_trigger, str(event))
        )
    invocation = _dig(statement.get("predicate"), "runDetails", "metadata", "invocationId")
    cert_run = facts.get("run_invocation")
    if (
        isinstance(invocation, str)
        and invocation.startswith("https://")
        and cert_run is not None
        and invocation != cert_run
    ):
        failures.append(
            Failure("run invocation in the statement (vs the certificate)", cert_run, invocation)
        )
    return failures


def claims(statement: dict[str, Any]) -> dict[str, Any]:
    """The statement's own words, shown as claims of whoever signed it (never as facts)."""
    out: dict[str, Any] = {}
    builder = builder_claim(statement)
    if isinstance(builder, str):
        out["builder_id"] = builder
    workflow = _workflow_claim(statement)
    if workflow is not None and all(isinstance(x, str) and x for x in workflow):
        repo, path, ref = workflow
        out["source_repository"] = _policy.repo_url(str(repo))
        out["workflow"] = f"{path}@{ref}"
        out["source_ref"] = ref
    ext = _dig(statement.get("predicate"), "buildDefinition", "externalParameters")
    for key, name in (("repository", "source_repository"), ("ref", "source_ref")):
        value = _dig(ext, key)
        if isinstance(value, str) and name not in out:
            out[name] = _policy.repo_url(value) if key == "repository" else value
    if "source_repository" not in out:  # slsa-github-generator v1 (BYOB, container)
        uri = _dig(ext, "source", "uri")
        if isinstance(uri, str):
            out["source_repository"] = _policy.repo_url(uri)
    commit = commit_claim(statement)
    if isinstance(commit, str):
        out["source_commit"] = commit
    ctx = _github_context(statement)
    event = ctx.get("event_name", ctx.get("github_event_name"))
    if isinstance(event, str):
        out["trigger"] = event
    return out
