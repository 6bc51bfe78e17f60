"""Verify SLSA provenance for an artifact: slsa-verifier when installed, else built in (offline).

The built-in path does what `slsa-verifier verify-artifact` does for Sigstore bundles:
certificate chain, transparency-log inclusion proof and signed timestamp against a pinned trusted
root (never refreshed from the network), GitHub's OIDC issuer, a trusted builder identity, the
source repository and ref from the certificate, the predicate's builder id equal to the signing
identity, and a subject whose sha256 equals the artifact's (sigstore-python does not compare
subjects). Key-signed DSSE statements verify against a public key instead.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from dataclasses import asdict, dataclass, field
from importlib import resources
from typing import Any

from provenance.errors import InputError, UsageError
from provenance.slsa import _policy
from provenance.slsa._formats import Provenance, UnsupportedProvenanceError, load
from provenance.slsa.statement import decode_statement


@dataclass
class SlsaResult:
    artifact: str
    verifier: str
    verified: bool = False
    builder_id: str | None = None
    source: str | None = None
    ref: str | None = None
    sha256: str | None = None
    failures: list[str] = field(default_factory=list)

    @property
    def verdict(self) -> str:
        if self.verified:
            return (
                f"PASS: {self.artifact} (sha256 {self.sha256}) was built by {self.builder_id} "
                f"from {self.source}@{self.ref} [verifier: {self.verifier}]"
            )
        reason = self.failures[0] if self.failures else "not verified"
        return f"FAIL: {reason} [verifier: {self.verifier}]"

    def to_dict(self) -> dict[str, Any]:
        doc = asdict(self)
        doc["verdict"] = self.verdict
        return doc


@dataclass(frozen=True)
class Expectations:
    source_uri: str
    builder_id: str | None = None
    branch: str | None = None
    tag: str | None = None

    def __post_init__(self) -> None:
        if self.branch and self.tag:
            raise UsageError("--source-branch and --source-tag exclude each other")

    @property
    def ref(self) -> str | None:
        if self.branch:
            return f"refs/heads/{self.branch}"
        return f"refs/tags/{self.tag}" if self.tag else None


def default_trusted_root() -> str:
    """The production trusted root that ships inside sigstore-python (no network refresh)."""
    return str(
        resources.files("sigstore._store")
        / "https%3A%2F%2Ftuf-repo-cdn.sigstore.dev"
        / "trusted_root.json"
    )


def sha256_file(path: str) -> str:
    from provenance.hashing import hash_file

    return hash_file(path, path).hex()


def _predicate_builder(statement: dict[str, Any]) -> str | None:
    pred = statement.get("predicate") or {}
    if statement.get("predicateType") == "https://slsa.dev/provenance/v1":
        return ((pred.get("runDetails") or {}).get("builder") or {}).get("id")
    return (pred.get("builder") or {}).get("id")


def _predicate_source(statement: dict[str, Any]) -> str | None:
    pred = statement.get("predicate") or {}
    if statement.get("predicateType") == "https://slsa.dev/provenance/v1":
        ext = (pred.get("buildDefinition") or {}).get("externalParameters") or {}
        workflow = ext.get("workflow")
        repo = ext.get("repository") or (
            workflow.get("repository") if isinstance(workflow, dict) else None
        )
        return repo if isinstance(repo, str) else None
    uri = ((pred.get("invocation") or {}).get("configSource") or {}).get("uri")
    return uri if isinstance(uri, str) else None


def _subject_matches(statement: dict[str, Any], digest: str) -> bool:
    subjects = statement.get("subject")
    return isinstance(subjects, list) and any(
        isinstance(s, dict)
        and isinstance(s.get("digest"), dict)
        and s["digest"].get("sha256") == digest
        for s in subjects
    )


def _check_statement(
    statement: dict[str, Any], result: SlsaResult, expect: Expectations, signer_identity: str | None
) -> None:
    if statement.get("predicateType") not in (
        "https://slsa.dev/provenance/v1",
        "https://slsa.dev/provenance/v0.2",
    ):
        result.failures.append(
            f"predicate type {statement.get('predicateType')!r} is not SLSA provenance v0.2 or v1"
        )
        return
    builder = _predicate_builder(statement)
    result.builder_id = builder
    if signer_identity is not None and builder != signer_identity:
        result.failures.append(
            f"predicate builder id {builder!r} differs from the signing "
            f"identity {signer_identity!r}"
        )
    elif (
        signer_identity is None
        and expect.builder_id
        and not _policy.builder_matches(str(builder), expect.builder_id)
    ):
        result.failures.append(f"builder id: got {builder!r}, expected {expect.builder_id!r}")
    source = _predicate_source(statement)
    if source is not None and _policy.normalize_repo(source) != _policy.normalize_repo(
        expect.source_uri
    ):
        result.failures.append(
            f"source in the predicate: got {source!r}, expected "
            f"{_policy.normalize_repo(expect.source_uri)!r}"
        )
    if signer_identity is None:  # key-signed: source and ref come from the statement itself
        result.source = source
        ext = ((statement.get("predicate") or {}).get("buildDefinition") or {}).get(
            "externalParameters"
        ) or {}
        result.ref = ext.get("ref") if isinstance(ext.get("ref"), str) else None
        if expect.ref and result.ref != expect.ref:
            result.failures.append(f"source ref: got {result.ref!r}, expected {expect.ref!r}")
        if source is None:
            result.failures.append("the statement names no source repository")
    if not _subject_matches(statement, str(result.sha256)):
        result.failures.append(
            f"no subject has the artifact's sha256 {result.sha256} "
            "(wrong artifact, or artifact modified)"
        )


def _verify_bundle(
    prov: Provenance, result: SlsaResult, expect: Expectations, trusted_root: str
) -> None:
    import json

    from sigstore.errors import Error as SigstoreError
    from sigstore.models import Bundle, TrustedRoot
    from sigstore.verify import Verifier
    from sigstore.verify.policy import AllOf

    try:
        root = TrustedRoot.from_file(trusted_root)
    except (OSError, ValueError) as exc:
        raise InputError(trusted_root, f"not a Sigstore trusted root ({exc})") from None
    try:
        bundle = Bundle.from_json(json.dumps(prov.document))
    except (ValueError, SigstoreError) as exc:
        raise InputError(prov.source, f"malformed Sigstore bundle: {exc}") from None
    policies: list[Any] = [
        _policy.Issuer(),
        _policy.TrustedBuilder(expect.builder_id),
        _policy.SourceRepository(expect.source_uri),
    ]
    if expect.ref:
        policies.append(_policy.SourceRef(expect.ref))
    try:
        ptype, payload = Verifier(trusted_root=root).verify_dsse(bundle, AllOf(policies))
    except SigstoreError as exc:
        message = str(exc)
        if (
            "only supported for dsse/hashedrekord" in message
            or "Unsupported DSSE log entry" in message
        ):
            kind = bundle.log_entry._inner.kind_version
            raise UnsupportedProvenanceError(
                prov.source,
                f"transparency-log entry type {kind.kind}/{kind.version} cannot be "
                "verified offline by this verifier (only dsse/0.0.1 and hashedrekord entries); "
                "use slsa-verifier or `gh attestation verify`",
            ) from None
        result.failures.append(message.split("\n")[0])
        return
    cert = bundle.signing_certificate
    result.source = _policy.extension(cert, _policy.OID_REPO_V2, _policy.OID_REPO_V1)
    result.ref = _policy.extension(cert, _policy.OID_REF_V2, _policy.OID_REF_V1)
    if ptype != "application/vnd.in-toto+json":
        result.failures.append(f"DSSE payload type {ptype!r} is not an in-toto statement")
        return
    _check_statement(decode_statement(payload, prov.source), result, expect, _policy.identity(cert))


def _verify_keyed(prov: Provenance, result: SlsaResult, expect: Expectations, key: Any) -> None:
    import json

    from provenance.signing import dsse

    env = dsse.parse(json.dumps(prov.document).encode(), prov.source)
    if not env.verified_keyids({key.keyid: key}):
        result.failures.append(
            f"signature does not verify with key {key.keyid[:8]} "
            f"(signed by: {', '.join(k[:8] for k in env.keyids) or 'nobody'})"
        )
        return
    _check_statement(decode_statement(env.payload, prov.source), result, expect, None)


def verify_builtin(
    artifact: str,
    provenance: str,
    expect: Expectations,
    *,
    trusted_root: str | None = None,
    key: Any = None,
) -> SlsaResult:
    import sigstore

    docs = load(provenance)
    verifier = (
        "built-in key verifier"
        if key is not None
        else f"built-in (sigstore-python {sigstore.__version__}, offline)"
    )
    result = SlsaResult(artifact, verifier, sha256=sha256_file(artifact))
    # An .intoto.jsonl may hold provenance for several artifacts: one must verify for this one.
    attempts: list[str] = []
    for prov in docs:
        result.failures = []
        if prov.kind == "dsse":
            if key is None:
                raise UsageError(f"{prov.source} is a key-signed DSSE envelope: pass --key PUB")
            _verify_keyed(prov, result, expect, key)
        else:
            _verify_bundle(prov, result, expect, trusted_root or default_trusted_root())
        if not result.failures:
            result.verified = True
            return result
        attempts += result.failures
    result.failures = attempts
    return result


def find_slsa_verifier(explicit: str | None) -> str | None:
    if explicit:
        if not (os.path.isfile(explicit) and os.access(explicit, os.X_OK)):
            raise UsageError(f"--slsa-verifier {explicit}: not an executable file")
        return explicit
    return shutil.which("slsa-verifier")


def verify_with_slsa_verifier(
    binary: str, artifact: str, provenance: str, expect: Expectations
) -> SlsaResult:
    argv = [
        binary,
        "verify-artifact",
        artifact,
        "--provenance-path",
        provenance,
        "--source-uri",
        _policy.normalize_repo(expect.source_uri),
    ]
    if expect.builder_id:
        argv += ["--builder-id", expect.builder_id]
    if expect.branch:
        argv += ["--source-branch", expect.branch]
    if expect.tag:
        argv += ["--source-tag", expect.tag]
    result = SlsaResult(artifact, f"slsa-verifier ({binary})", sha256=sha256_file(artifact))
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        from provenance.errors import InfrastructureError

        raise InfrastructureError(f"slsa-verifier could not run: {exc}") from None
    output = (proc.stdout + proc.stderr).strip()
    result.verified = proc.returncode == 0
    result.source = _policy.normalize_repo(expect.source_uri)
    result.ref = expect.ref
    result.builder_id = expect.builder_id
    if not result.verified:
        lines = [ln for ln in output.splitlines() if ln.strip()]
        result.failures.append(
            f"slsa-verifier exited {proc.returncode}: " + (lines[-1] if lines else "no output")
        )
    return result
