"""Say what a provenance file is, by its content, and who signed it.

Recognised: in-toto links and signed layouts, in-toto Statements (SLSA provenance, VSA, scan
result, any other predicate) as key-signed DSSE envelopes, Sigstore bundles or `.jsonl` lines,
and the gate's decision / revocation records (a registry tag value saved to a file).

The signature is checked with the keys given before anything is believed. The payload is
decoded for display either way, but a description whose signature did not verify is marked
`unverified`: what it says about signers, steps and artifacts is a claim, not a fact.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from provenance._fs import load_json_bounded, read_bounded
from provenance.errors import InputError

MAX_BYTES = 512 * 1024 * 1024
FIRST = 5
VALID, INVALID, NOT_CHECKED = "VALID", "INVALID", "NOT CHECKED"
DECISION_TYPE = "application/vnd.ml-provenance.decision.v1+json"
REVOCATION_TYPE = "application/vnd.ml-provenance.revocation.v1+json"
STATEMENT_TYPES = ("https://in-toto.io/Statement/v1", "https://in-toto.io/Statement/v0.1")
PREDICATES = {
    "https://slsa.dev/provenance/v1": "SLSA provenance v1",
    "https://slsa.dev/provenance/v0.2": "SLSA provenance v0.2",
    "https://slsa.dev/verification_summary/v1": "SLSA verification summary (VSA)",
    "https://in-toto.io/attestation/test-result/v0.1": "model scan result (in-toto test-result)",
}


@dataclass
class Description:
    """What one document is; `signature` is VALID, INVALID or NOT CHECKED."""

    kind: str
    source: str
    signature: str = NOT_CHECKED
    signers: list[str] = field(default_factory=list)  # key ids (claimed unless VALID)
    verified_by: list[str] = field(default_factory=list)
    identity: dict[str, str] = field(default_factory=dict)  # Sigstore certificate
    fields: dict[str, Any] = field(default_factory=dict)
    note: str = ""

    @property
    def unverified(self) -> bool:
        return self.signature != VALID

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "source": self.source,
            "signature": self.signature,
            "unverified": self.unverified,
            "signers": self.signers,
            "verified_by": self.verified_by,
            "identity": self.identity,
            "fields": self.fields,
            "note": self.note,
        }


def _obj(doc: dict[str, Any], key: str) -> dict[str, Any]:
    value = doc.get(key)
    return value if isinstance(value, dict) else {}


def _arr(doc: dict[str, Any], key: str) -> list[Any]:
    value = doc.get(key)
    return value if isinstance(value, list) else []


def _first(items: Any) -> dict[str, Any]:
    if not isinstance(items, dict):
        return {"count": 0, "first": []}
    names = sorted(str(k) for k in items)
    return {"count": len(names), "first": names[:FIRST]}


def _describe_link(doc: dict[str, Any], d: Description) -> None:
    env = _obj(doc, "environment")
    d.kind = "in-toto link"
    d.fields = {
        "step": doc.get("name"),
        "command": doc.get("command"),
        "materials": _first(doc.get("materials")),
        "products": _first(doc.get("products")),
        "environment": {
            k: env.get(k)
            for k in (
                "pipeline_run_id",
                "git_commit",
                "git_dirty",
                "python",
                "platform",
                "mlflow_run_id",
            )
            if k in env
        },
    }
    if "started_on" in env or "finished_on" in env:
        d.fields["when"] = f"{env.get('started_on', '?')} -> {env.get('finished_on', '?')}"
    from provenance.datasets import recorded_datasets

    # A dataset is one entry (its manifest is one of the artifacts counted above).
    datasets = recorded_datasets(env, doc.get("materials"), doc.get("products"))
    if datasets:
        d.fields["datasets"] = [ds.to_dict() for ds in datasets]


def _describe_layout(doc: dict[str, Any], d: Description) -> None:
    d.kind = "in-toto layout (signed)"
    steps = _arr(doc, "steps")
    inspect = _arr(doc, "inspect")
    d.fields = {
        "expires": doc.get("expires"),
        "steps": [s.get("name") for s in steps if isinstance(s, dict)],
        "inspections": [s.get("name") for s in inspect if isinstance(s, dict)],
        "functionary_keys": sorted(str(k)[:8] for k in (doc.get("keys") or {})),
    }


def _describe_statement(doc: dict[str, Any], d: Description) -> None:
    ptype = str(doc.get("predicateType"))
    d.kind = f"in-toto attestation: {PREDICATES.get(ptype, 'predicate ' + ptype)}"
    subjects = _arr(doc, "subject")
    pred = _obj(doc, "predicate")
    d.fields = {
        "predicate_type": ptype,
        "subjects": [
            {"name": s.get("name"), "sha256": (s.get("digest") or {}).get("sha256")}
            for s in subjects[:FIRST]
            if isinstance(s, dict)
        ],
        "subject_count": len(subjects),
    }
    build = _obj(pred, "buildDefinition") or None
    run = _obj(pred, "runDetails") or None
    if build is not None:
        deps = build.get("resolvedDependencies")
        d.fields["build_type"] = build.get("buildType")
        d.fields["resolved_dependencies"] = len(deps) if isinstance(deps, list) else 0
    if run is not None:
        builder = _obj(run, "builder")
        meta = _obj(run, "metadata")
        d.fields["builder"] = builder.get("id")
        d.fields["started_on"] = meta.get("startedOn")
    for key in ("verificationResult", "verifiedLevels", "timeVerified", "result"):
        if key in pred:
            d.fields[key] = pred[key]
    verifier = pred.get("verifier")
    if isinstance(verifier, dict):
        d.fields["verifier"] = verifier.get("id")


def _describe_record(doc: dict[str, Any], d: Description, ptype: str) -> None:
    d.kind = "gate decision record" if ptype == DECISION_TYPE else "gate revocation record"
    keys = ("model", "version", "alias", "result", "verified_at", "run_id", "layout_sha256")
    d.fields = {k: doc.get(k) for k in (*keys, "revoked_at", "reason") if k in doc}
    if _obj(doc, "files"):
        d.fields["files"] = _first(doc["files"])


def _payload_doc(payload: bytes, source: str) -> Any:
    return load_json_bounded(payload, source, what="payload")


def _describe_payload(payload: bytes, ptype: str, d: Description) -> None:
    """Decode the payload for display (it is trusted only when `d.signature` is VALID)."""
    doc = _payload_doc(payload, d.source)
    if not isinstance(doc, dict):
        raise InputError(d.source, "the signed payload is not a JSON object")
    if ptype in (DECISION_TYPE, REVOCATION_TYPE):
        _describe_record(doc, d, ptype)
    elif doc.get("_type") == "link":
        _describe_link(doc, d)
    elif doc.get("_type") == "layout":
        _describe_layout(doc, d)
    elif doc.get("_type") in STATEMENT_TYPES:
        _describe_statement(doc, d)
    else:
        raise InputError(d.source, f"a DSSE envelope with an unknown payload ({ptype})")


def _check(env: Any, keys: Mapping[str, Any], d: Description) -> None:
    """Which of `keys` signed `env`.

    Key ids in an envelope are hints (other producers use their own, e.g. `keystore://…`), so
    every key is tried against every signature.
    """
    from provenance.attest import verified_keyids

    d.signers = list(env.keyids)
    if not keys:
        return
    from securesystemslib.signer import SSlibKey

    def under(claimed: str, key: Any) -> Any:
        return SSlibKey(claimed, key.keytype, key.scheme, dict(key.keyval))

    d.verified_by = [
        keyid
        for keyid, key in keys.items()
        if verified_keyids(env, {keyid: key, **{c: under(c, key) for c in env.keyids if c}})
    ]
    d.signature = VALID if d.verified_by else INVALID


def _certificate(raw_b64: str) -> dict[str, str]:
    """Identity, issuer, source and validity of a Fulcio certificate (display only)."""
    from cryptography import x509

    from provenance._fs import UTC_FORMAT
    from provenance.attest.slsa import certificate_facts

    cert = x509.load_der_x509_certificate(base64.b64decode(raw_b64))
    out = {
        "not_before": cert.not_valid_before_utc.strftime(UTC_FORMAT),
        "not_after": cert.not_valid_after_utc.strftime(UTC_FORMAT),
    }
    facts = certificate_facts(cert)
    values = {
        "identity": facts.get("signer"),
        "issuer": facts.get("issuer"),
        "source": facts.get("source_repository"),
        "ref": facts.get("source_ref"),
    }
    out.update({k: v for k, v in values.items() if v})
    return out


def _bundle_root_check(bundle_doc: dict[str, Any], d: Description) -> None:
    """Chain, log entry and signature against the pinned Sigstore root, if sigstore is here."""
    import json

    try:
        from sigstore.errors import Error as SigstoreError
        from sigstore.models import Bundle
        from sigstore.verify import Verifier
        from sigstore.verify.policy import UnsafeNoOp

        from provenance.attest.slsa import default_trusted_root, load_trusted_root
    except ImportError:
        d.note = "certificate chain not checked (install ml-provenance[sigstore])"
        return
    from provenance.attest.slsa import OFFLINE_ENTRIES

    vm = _obj(bundle_doc, "verificationMaterial")
    for entry in _arr(vm, "tlogEntries"):
        kv = _obj(entry, "kindVersion") if isinstance(entry, dict) else {}
        kind = (kv.get("kind"), kv.get("version"))
        if kind not in OFFLINE_ENTRIES:
            d.note = (
                f"certificate chain not checked: transparency-log entry type {kind[0]}/{kind[1]} "
                "cannot be verified offline (`gh attestation verify` accepts it)"
            )
            return
    try:
        bundle = Bundle.from_json(json.dumps(bundle_doc))
        verifier = Verifier(trusted_root=load_trusted_root(default_trusted_root()))
    except (SigstoreError, ValueError, TypeError, InputError) as exc:
        first = (str(exc).splitlines() or ["unreadable"])[0]
        d.note = f"certificate chain not checked: sigstore-python cannot read it ({first})"
        return
    import logging

    policy_log = logging.getLogger("sigstore.verify.policy")  # warns about the no-op policy
    level = policy_log.level
    policy_log.setLevel(logging.ERROR)
    try:
        verifier.verify_dsse(bundle, UnsafeNoOp())
    except (SigstoreError, ValueError, TypeError) as exc:
        d.signature = INVALID
        d.note = "against the pinned Sigstore root: " + (str(exc).splitlines() or ["failed"])[0]
        return
    finally:
        policy_log.setLevel(level)
    d.signature = VALID
    d.verified_by = [d.identity.get("identity", "(no identity)")]
    d.note = (
        "certificate chain, transparency log and signature verified against the pinned "
        "Sigstore root; the identity is not checked against any policy here "
        "(use `provenance slsa verify`)"
    )


def _describe_bundle(doc: dict[str, Any], source: str, check_root: bool) -> Description:
    d = Description("Sigstore bundle", source)
    vm = doc.get("verificationMaterial")
    vm = vm if isinstance(vm, dict) else {}
    cert = vm.get("certificate")
    raw = cert.get("rawBytes") if isinstance(cert, dict) else None
    chain = (vm.get("x509CertificateChain") or {}).get("certificates")
    if raw is None and isinstance(chain, list) and chain and isinstance(chain[0], dict):
        raw = chain[0].get("rawBytes")
    if isinstance(raw, str):
        try:
            d.identity = _certificate(raw)
        except (ValueError, binascii.Error):
            d.identity = {"error": "the certificate cannot be read"}
    entries = vm.get("tlogEntries")
    if isinstance(entries, list) and entries and isinstance(entries[0], dict):
        when = entries[0].get("integratedTime")
        if when is not None:
            import datetime as dt

            try:
                t = dt.datetime.fromtimestamp(int(when), dt.timezone.utc)
                d.fields["logged_at"] = t.strftime("%Y-%m-%dT%H:%M:%SZ")
            except (ValueError, OverflowError, OSError):
                pass
    env = doc.get("dsseEnvelope")
    if not isinstance(env, dict):
        d.kind = "Sigstore bundle (message signature, no attestation)"
        d.note = "certificate chain not checked"
        return d
    from provenance.signing import dsse

    parsed = dsse.parse(_dumps(env), source, "Sigstore bundle envelope")
    fields = dict(d.fields)
    _describe_payload(parsed.payload, parsed.payload_type, d)
    d.fields = {**fields, **d.fields}
    d.kind = f"Sigstore bundle: {d.kind}"
    if check_root:
        _bundle_root_check(doc, d)
    else:
        d.note = "certificate chain not checked"
    return d


def _dumps(doc: Any) -> bytes:
    import json

    return json.dumps(doc).encode()


def describe_document(
    doc: Any, source: str, keys: Mapping[str, Any], *, check_root: bool = True
) -> Description:
    """Describe one parsed JSON document."""
    if isinstance(doc, dict) and isinstance(doc.get("bundle"), dict):
        doc = doc["bundle"]
    if not isinstance(doc, dict):
        raise InputError(source, "not a provenance document (not a JSON object)")
    media = doc.get("mediaType")
    if isinstance(media, str) and media.startswith("application/vnd.dev.sigstore.bundle"):
        return _describe_bundle(doc, source, check_root)
    if {"payload", "payloadType", "signatures"} <= doc.keys():
        from provenance.signing import dsse

        env = dsse.parse(_dumps(doc), source)
        d = Description("DSSE envelope", source)
        _check(env, keys, d)  # before anything in the payload is read
        _describe_payload(env.payload, env.payload_type, d)
        return d
    if "signed" in doc and "signatures" in doc:
        raise InputError(source, "legacy in-toto metadata (Metablock); not supported")
    raise InputError(
        source,
        "not a link, layout, attestation, Sigstore bundle or gate record "
        "(no DSSE envelope or bundle found)",
    )


MANIFEST_MAGIC = b"#ml-provenance-dataset/"
UNSIGNED = "NONE"


def _manifest_head(path: str) -> bool:
    try:
        with open(path, "rb") as f:
            return f.read(len(MANIFEST_MAGIC)) == MANIFEST_MAGIC
    except OSError:
        return False  # read_bounded names the problem


def describe_manifest(path: str) -> Description:
    """A dataset manifest: checked line by line as it streams, counted and hashed."""
    from provenance.datasets import human_bytes, scan

    info = scan(path)
    d = Description("dataset manifest", path, signature=UNSIGNED)
    d.fields = {
        "dataset_kind": info.kind,
        "members": info.members,
        "bytes": info.bytes,
        "size": human_bytes(info.bytes),
        "sha256": info.sha256,
    }
    d.note = (
        "a manifest is not signed: it stands for a dataset when a verified link records this "
        "sha256 (`provenance trace <sha256> --layout …`)"
    )
    return d


def inspect_file(path: str, keys: Mapping[str, Any]) -> list[Description]:
    """Every document in `path` (one JSON document, or JSON lines), described."""
    if _manifest_head(path):
        return [describe_manifest(path)]
    raw = read_bounded(path, MAX_BYTES, "file")
    lines = [line for line in raw.splitlines() if line.strip()]
    try:
        doc = load_json_bounded(raw, path, what="file")
    except InputError:
        if len(lines) < 2:
            raise
    else:
        return [describe_document(doc, path, keys)]
    out = []
    for i, line in enumerate(lines):
        where = f"{path} (line {i + 1})"
        out.append(describe_document(load_json_bounded(line, where, what="line"), where, keys))
    return out


def key_map(keys: Sequence[Any]) -> dict[str, Any]:
    return {k.keyid: k for k in keys}
