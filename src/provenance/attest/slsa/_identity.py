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

from collections.abc import Mapping
from typing import Any

from cryptography import x509
from cryptography.x509 import ObjectIdentifier

from provenance.attest.slsa import _policy
from provenance.attest.slsa._result import Failure
from provenance.attest.slsa_provenance import PREDICATE_TYPE, SlsaProvenance, SlsaProvenanceV02

SLSA_V1 = PREDICATE_TYPE
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
    repo = facts.get("source_repository")
    if repo is not None and "://" not in repo:  # Fulcio's v1 extension: `ORG/REPO`
        facts["source_repository"] = _policy.repo_url(repo)
    return facts


Provenance = SlsaProvenance | SlsaProvenanceV02


def builder_claim(pred: Provenance) -> str:
    """The builder id the statement names (v1 `runDetails.builder.id`, v0.2 `builder.id`)."""
    return pred.builder_id


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


def check_builder(pred: Provenance, facts: dict[str, str], *, runner_ok: bool) -> list[Failure]:
    """The statement's builder id against the signing identity (certificate-signed only)."""
    signer = facts.get("signer", "")
    builder = pred.builder_id
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


def _workflow_claim(pred: Provenance) -> tuple[Any, Any, Any] | None:
    """(repository, path, ref) of the workflow the statement names, or None if it names none.

    Three shapes: GitHub's buildType (`externalParameters.workflow` = {repository, path,
    ref}); this project's own statements (`externalParameters.workflow` = `ORG/REPO/PATH@REF`,
    GITHUB_WORKFLOW_REF); v0.2 (`invocation.configSource` uri@ref + entryPoint).
    `externalParameters` is free-form by the spec (its meaning is the buildType's): read as JSON.
    """
    if isinstance(pred, SlsaProvenanceV02):
        source = pred.config_source
        if not (source.uri or source.entry_point):
            return None
        repo, _, ref = source.uri.partition("@")
        return repo, source.entry_point, ref or None
    workflow = pred.external_parameters.get("workflow")
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


def _repo_of(uri: str) -> str:
    """The repository a claimed URI names, compared exactly.

    Only a git URI's `git+` prefix and `@ref` suffix are taken off; nothing else (no case
    folding, no `.git` or slash trimming, no `@` cut from a plain URL): the certificate's Source
    Repository URI is canonical, and a claim spelled otherwise is refused.
    """
    return uri.removeprefix("git+").partition("@")[0] if uri.startswith("git+") else uri


def _candidates(pred: Provenance) -> dict[str, list[Any]]:
    """Every value the statement gives, anywhere, for what the certificate also states.

    A field read from one place and checked in another lets a statement say one thing to the
    check and another to the reader (a trigger under `internalParameters.github` and a different
    one at the top level). So every place is collected, and every value must agree.
    """
    out: dict[str, list[Any]] = {"source_repository": [], "source_ref": [], "trigger": []}
    workflow = _workflow_claim(pred)
    if workflow is not None:
        out["source_repository"].append(workflow[0])
        out["source_ref"].append(workflow[2])
    if isinstance(pred, SlsaProvenance):
        ext = pred.external_parameters
        for key, name in (("repository", "source_repository"), ("ref", "source_ref")):
            if key in ext:
                out[name].append(ext[key])
        source = ext.get("source")
        if source is not None:
            uri = source.get("uri") if isinstance(source, dict) else source
            out["source_repository"].append(uri)
            if isinstance(uri, str) and "@" in uri:
                out["source_ref"].append(uri.partition("@")[2])
    out["trigger"] = event_names(pred)
    return out


def event_names(pred: Provenance) -> list[Any]:
    """The GitHub event name wherever the statement records one (any key case)."""
    places: list[Any] = []
    if isinstance(pred, SlsaProvenanceV02):
        places.append(pred.environment)
    else:
        places.append(pred.internal_parameters)
        places.append(pred.internal_parameters.get("github"))
    names = []
    for ctx in places:
        if isinstance(ctx, Mapping):
            names += [v for k, v in ctx.items() if str(k).lower() in _EVENT_KEYS]
    return names


_EVENT_KEYS = ("event_name", "github_event_name")


def _commits(pred: Provenance, repo: str | None) -> list[Any]:
    """The commits the statement names for `repo` (None: for whatever it names first)."""
    if isinstance(pred, SlsaProvenanceV02):
        found = [(pred.config_source.uri, pred.config_source.digest.get("sha1"))]
        found += [(m.uri, m.digest.get("sha1")) for m in pred.materials]
    else:
        found = [(d.uri, d.digest.get("gitCommit")) for d in pred.resolved_dependencies]
    found = [(uri, c) for uri, c in found if c is not None]
    if repo is None:
        return [c for _, c in found[:1]]
    return [c for uri, c in found if _repo_of(uri) == repo]


def check_workflow(pred: Provenance, facts: dict[str, str]) -> list[Failure]:
    """Every repository, ref and workflow the statement names is the certificate's."""
    failures = []
    cert_repo, cert_ref = facts.get("source_repository"), facts.get("source_ref")
    values = _candidates(pred)
    for repo in values["source_repository"]:
        if not isinstance(repo, str) or cert_repo is None or _repo_of(repo) != cert_repo:
            failures.append(
                Failure(
                    "source repository in the statement (vs the certificate)", cert_repo, str(repo)
                )
            )
    for ref in values["source_ref"]:
        if ref != cert_ref:
            failures.append(
                Failure("source ref in the statement (vs the certificate)", cert_ref, str(ref))
            )
    claim = _workflow_claim(pred)
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
    named = f"{_repo_of(str(repo))}/{path!s}@{ref}"
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
    return failures


def commit_claim(pred: Provenance, repo: str | None = None) -> Any:
    """The source commit the statement names for `repo` (default: the first it names)."""
    commits = _commits(pred, repo)
    return commits[0] if commits else None


def check_context(pred: Provenance, facts: dict[str, str]) -> list[Failure]:
    """Commits, triggers and run invocation named by the statement, against the certificate."""
    failures = []
    cert_commit, cert_repo = facts.get("source_commit"), facts.get("source_repository")
    if cert_repo is not None:
        for commit in _commits(pred, cert_repo):
            if commit != cert_commit:
                failures.append(
                    Failure(
                        "source commit in the statement (vs the certificate)",
                        cert_commit,
                        str(commit),
                    )
                )
    cert_trigger = facts.get("trigger")
    for event in event_names(pred):
        if event != cert_trigger:
            failures.append(
                Failure("trigger in the statement (vs the certificate)", cert_trigger, str(event))
            )
    invocation = pred.invocation_id
    cert_run = facts.get("run_invocation")
    if invocation.startswith("https://") and cert_run is not None and invocation != cert_run:
        failures.append(
            Failure("run invocation in the statement (vs the certificate)", cert_run, invocation)
        )
    return failures


def claims(pred: Provenance) -> dict[str, Any]:
    """The statement's own words, shown as claims of whoever signed it (never as facts)."""
    out: dict[str, Any] = {"builder_id": pred.builder_id}
    values = _candidates(pred)
    for name in ("source_repository", "source_ref", "trigger"):
        seen = list(dict.fromkeys(str(v) for v in values[name] if v is not None))
        if seen:
            out[name] = seen[0] if len(seen) == 1 else seen
    repo = out.get("source_repository")
    workflow = _workflow_claim(pred)
    if workflow is not None and all(isinstance(x, str) and x for x in workflow):
        out["workflow"] = f"{workflow[1]}@{workflow[2]}"
    commit = commit_claim(pred, _repo_of(repo) if isinstance(repo, str) else None)
    if commit is None:
        commit = commit_claim(pred)
    if isinstance(commit, str):
        out["source_commit"] = commit
    inputs = recorded_inputs(pred)
    if isinstance(inputs, Mapping):
        out["workflow_inputs"] = dict(inputs)
    return out


def _environment(pred: Provenance) -> tuple[Mapping[str, Any] | None, bool]:
    """The GitHub context the predicate records, and whether its keys are upper-case."""
    if isinstance(pred, SlsaProvenanceV02):
        env = pred.environment
        return (env if isinstance(env, Mapping) else None), False
    return pred.internal_parameters, True


def recorded_inputs(pred: Provenance) -> Mapping[str, Any] | Failure:
    """The run's inputs, or the Failure that says why the provenance has none to compare."""
    env, upper = _environment(pred)

    def key(name: str) -> str:
        return name.upper() if upper else name

    event = env.get(key("github_event_name")) if env else None
    if not isinstance(event, str):
        return Failure("build workflow inputs", None, "the provenance records no GitHub event")
    if event != "workflow_dispatch":
        return Failure(
            "build workflow inputs (only a workflow_dispatch run has inputs): trigger",
            "workflow_dispatch",
            event,
        )
    payload = env.get(key("github_event_payload")) if env else None
    inputs = payload.get("inputs") if isinstance(payload, dict) else None
    if not isinstance(inputs, dict):
        return Failure("build workflow inputs", None, "the provenance records no inputs")
    return inputs
