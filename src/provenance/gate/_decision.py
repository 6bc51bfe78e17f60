"""The gate's signed records: a decision per (model, version, alias), and a revocation.

Kept free of any registry so the gate, the registry-store plugin and `fetch` share one
definition. Each record is a DSSE envelope stored whole as one registry tag value; its signature
is checked before the payload is parsed, and the payload must name the exact model, version (and
alias) of the tag it was read from, so a record copied to another version, model or alias, or
edited, never verifies. Nothing else under `provenance.*` is trusted by anyone.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from provenance._fs import canonical_json, load_json_bounded
from provenance.errors import InputError, VerificationError
from provenance.signing import dsse

if TYPE_CHECKING:
    from securesystemslib.signer import Key, Signer

DECISION_TYPE = "application/vnd.ml-provenance.decision.v1+json"
REVOCATION_TYPE = "application/vnd.ml-provenance.revocation.v1+json"
PREFIX = "provenance."
DECISION_PREFIX = PREFIX + "decision."
VSA_PREFIX = PREFIX + "vsa."
REVOKED_TAG = PREFIX + "revoked"
MAX_TAG_VALUE = 5000  # MLflow's limit for model version tag values
PASSED, FAILED = "PASSED", "FAILED"


def decision_tag(alias: str) -> str:
    return DECISION_PREFIX + alias


def vsa_tag(alias: str) -> str:
    return VSA_PREFIX + alias


def is_reserved(key: str) -> bool:
    """Tag keys only the gate may write: `provenance.*`, compared without case or padding."""
    return key.strip().casefold().startswith(PREFIX)


def now() -> str:
    """UTC with microseconds, fixed width: decisions order by comparing these strings."""
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass(frozen=True)
class Decision:
    """The gate's verdict for one (model, version, alias)."""

    model: str
    version: str
    alias: str
    result: str  # PASSED | FAILED
    artifacts_sha256: str  # Manifest.digest() of the registered files
    layout_sha256: str
    verified_at: str
    run_id: str | None = None
    reasons: tuple[str, ...] = ()
    files: Mapping[str, str] | None = field(default=None, compare=False)  # when it fits a tag
    vsa_sha256: str | None = None  # the SLSA VSA stored beside it (`provenance.vsa.<alias>`)

    @property
    def passed(self) -> bool:
        return self.result == PASSED

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "_type": DECISION_TYPE,
            "model": self.model,
            "version": self.version,
            "alias": self.alias,
            "result": self.result,
            "artifacts_sha256": self.artifacts_sha256,
            "layout_sha256": self.layout_sha256,
            "verified_at": self.verified_at,
            "run_id": self.run_id,
            "reasons": list(self.reasons),
            "vsa_sha256": self.vsa_sha256,
        }
        if self.files is not None:
            data["files"] = dict(sorted(self.files.items()))
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Decision:
        required = {"_type", "model", "version", "alias", "result", "artifacts_sha256"}
        required |= {"layout_sha256", "verified_at", "run_id", "reasons", "vsa_sha256"}
        _exact_keys(data, required, {"files"})
        files = data.get("files")
        if files is not None and not (
            isinstance(files, dict)
            and all(isinstance(k, str) and isinstance(v, str) for k, v in files.items())
        ):
            raise VerificationError("decision record: 'files' is malformed")
        reasons = data["reasons"]
        if not isinstance(reasons, list) or not all(isinstance(r, str) for r in reasons):
            raise VerificationError("decision record: 'reasons' is malformed")
        decision = cls(
            _str(data, "model"),
            _str(data, "version"),
            _str(data, "alias"),
            _str(data, "result"),
            _str(data, "artifacts_sha256"),
            _str(data, "layout_sha256"),
            _str(data, "verified_at"),
            data["run_id"] if isinstance(data["run_id"], str) else None,
            tuple(reasons),
            files,
            data["vsa_sha256"] if isinstance(data["vsa_sha256"], str) else None,
        )
        if decision.result not in (PASSED, FAILED):
            raise VerificationError(f"decision record: unknown result '{decision.result}'")
        return decision


@dataclass(frozen=True)
class Revocation:
    """After this, the version may hold no protected alias and `fetch` refuses it."""

    model: str
    version: str
    revoked_at: str
    reason: str

    def to_dict(self) -> dict[str, Any]:
        return {
            "_type": REVOCATION_TYPE,
            "model": self.model,
            "version": self.version,
            "revoked_at": self.revoked_at,
            "reason": self.reason,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Revocation:
        _exact_keys(data, {"_type", "model", "version", "revoked_at", "reason"}, set())
        return cls(
            _str(data, "model"),
            _str(data, "version"),
            _str(data, "revoked_at"),
            _str(data, "reason"),
        )


Record = Decision | Revocation


def _exact_keys(data: Mapping[str, Any], required: set[str], optional: set[str]) -> None:
    missing, unknown = required - data.keys(), data.keys() - required - optional
    if missing or unknown:
        raise VerificationError(
            f"gate record: missing {sorted(missing)} / unknown {sorted(unknown)} fields"
        )


def _str(data: Mapping[str, Any], key: str) -> str:
    value = data[key]
    if not isinstance(value, str):
        raise VerificationError(f"gate record: '{key}' must be a string")
    return value


def sign_record(record: Record, signer: Signer) -> str:
    """The tag value: the record as a compact DSSE envelope (JSON) signed by the gate."""
    kind = DECISION_TYPE if isinstance(record, Decision) else REVOCATION_TYPE
    payload = canonical_json(record.to_dict())
    return dsse.dumps(dsse.sign(payload, signer, kind)).decode()


def fit_files(decision: Decision, signer_keyid_len: int = 64) -> Decision:
    """Drop the per-file list when the signed record would not fit one tag value."""
    size = len(canonical_json(decision.to_dict())) * 4 // 3 + 400 + signer_keyid_len
    if decision.files is not None and size > MAX_TAG_VALUE:
        return Decision(**{**decision.__dict__, "files": None})
    return decision


def open_record(key: str, value: str, gate_key: Key, model: str, version: str) -> Record:
    """The record stored under tag `key` of `model` `version`, if the gate signed exactly it.

    Raises VerificationError naming what is wrong: not signed by the gate key, or signed for
    another model, version, alias or kind of record (copied or replayed).
    """
    where = f"tag '{key}' of '{model}' version {version}"
    try:
        env = dsse.parse(value.encode(), where, "gate record")
    except Exception as exc:  # noqa: BLE001 - any malformed value is simply not a gate record
        raise VerificationError(f"{where} is not a gate-signed record ({exc})") from None
    if not env.verified_keyids({gate_key.keyid: gate_key}):
        raise VerificationError(
            f"{where} is not signed by gate key {gate_key.keyid[:8]} "
            "(forged, edited, or signed by another gate)"
        )
    try:
        data = load_json_bounded(env.payload, where, what="gate record")
    except InputError:
        raise VerificationError(f"{where}: signed payload is not valid JSON") from None
    if not isinstance(data, dict) or data.get("_type") != env.payload_type:
        raise VerificationError(f"{where}: record type does not match its envelope")
    record: Record
    if key == REVOKED_TAG and env.payload_type == REVOCATION_TYPE:
        record = Revocation.from_dict(data)
    elif key.startswith(DECISION_PREFIX) and env.payload_type == DECISION_TYPE:
        record = Decision.from_dict(data)
        if record.alias != key[len(DECISION_PREFIX) :]:
            raise VerificationError(
                f"{where} holds a decision for alias '{record.alias}' (copied between aliases)"
            )
    else:
        raise VerificationError(f"{where}: a {env.payload_type} record does not belong here")
    if record.model != model or record.version != str(version):
        raise VerificationError(
            f"{where} holds a record for '{record.model}' version {record.version} "
            "(copied from another version or model)"
        )
    return record


def decision_for(
    tags: Mapping[str, str], gate_key: Key, model: str, version: str, alias: str
) -> Decision:
    """The verified decision for `alias` on this version; VerificationError if none holds."""
    value = tags.get(decision_tag(alias))
    if value is None:
        raise VerificationError(
            f"version {version} of '{model}' has no gate decision for alias '{alias}' "
            "(promote it with `provenance promote`)"
        )
    record = open_record(decision_tag(alias), value, gate_key, model, version)
    assert isinstance(record, Decision)
    return record


def revocation_of(
    tags: Mapping[str, str], gate_key: Key, model: str, version: str
) -> Revocation | None:
    """The version's revocation if it has one.

    A revocation tag that does not verify is an error, not an absence: failing closed beats
    serving a version someone tried to revoke.
    """
    value = tags.get(REVOKED_TAG)
    if value is None:
        return None
    record = open_record(REVOKED_TAG, value, gate_key, model, version)
    assert isinstance(record, Revocation)
    return record
