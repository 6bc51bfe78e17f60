"""The gate's signed decision: which artifacts of which model version may carry which alias.

Kept free of mlflow so the registry plugin, the loader and the gate share one definition. The
payload is rebuilt from the version's tags and the signature checked against the gate's public
key, so editing any tag (or copying tags to another version) invalidates it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from provenance.signing import dsse

PAYLOAD_TYPE = "application/vnd.ml-provenance.gate-decision+json"
PREFIX = "provenance."
TAG_VERIFIED = PREFIX + "verified"
TAG_LAYOUT = PREFIX + "layout_sha256"
TAG_ARTIFACTS = PREFIX + "artifacts_sha256"
TAG_MANIFEST = PREFIX + "artifacts"
TAG_VERIFIED_AT = PREFIX + "verified_at"
TAG_SIGNATURE = PREFIX + "gate_signature"
TAG_FAILURE = PREFIX + "failure"
TAG_RUN_ID = PREFIX + "run_id"
MAX_TAG_VALUE = 5000  # MLflow's limit for model version tag values


def signature_tag(alias: str) -> str:
    return f"{TAG_SIGNATURE}.{alias}"


def artifacts_digest(files: Mapping[str, str]) -> str:
    """sha256 over the sorted `sha256  path` lines of the files (like `sha256sum` output)."""
    text = "".join(f"{digest}  {path}\n" for path, digest in sorted(files.items()))
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class Decision:
    model: str
    version: str
    alias: str
    artifacts_sha256: str
    layout_sha256: str
    verified_at: str

    def payload(self) -> bytes:
        return json.dumps(
            {
                "model": self.model,
                "version": self.version,
                "alias": self.alias,
                "artifacts_sha256": self.artifacts_sha256,
                "layout_sha256": self.layout_sha256,
                "verified_at": self.verified_at,
            },
            sort_keys=True,
            separators=(",", ":"),
        ).encode()

    def sign(self, signer: Any) -> str:
        """Tag value: `keyid:base64(signature over the DSSE PAE of the payload)`."""
        envelope = dsse.sign(self.payload(), signer, PAYLOAD_TYPE)
        sig = envelope["signatures"][0]
        return f"{sig['keyid']}:{sig['sig']}"

    def verify(self, tag_value: str, gate_key: Any) -> bool:
        keyid, _, sig = tag_value.partition(":")
        if not sig:
            return False
        try:
            env = dsse.parse(
                json.dumps(
                    {
                        "payload": _b64(self.payload()),
                        "payloadType": PAYLOAD_TYPE,
                        "signatures": [{"keyid": keyid, "sig": sig}],
                    }
                ).encode(),
                "gate signature",
            )
        except Exception:  # noqa: BLE001 - a malformed tag is simply not a valid signature
            return False
        return bool(env.verified_keyids({gate_key.keyid: gate_key}))


def _b64(data: bytes) -> str:
    import base64

    return base64.b64encode(data).decode()


def check_tags(
    model: str, version: str, alias: str, tags: Mapping[str, str], gate_key: Any
) -> Decision:
    """The decision the tags claim, if the gate's signature over it verifies; else ValueError."""
    sig = tags.get(signature_tag(alias))
    if sig is None:
        raise ValueError(
            f"version {version} of '{model}' has no gate signature for alias "
            f"'{alias}' (promote it with `provenance promote`)"
        )
    decision = Decision(
        model,
        str(version),
        alias,
        tags.get(TAG_ARTIFACTS, ""),
        tags.get(TAG_LAYOUT, ""),
        tags.get(TAG_VERIFIED_AT, ""),
    )
    if not decision.verify(sig, gate_key):
        raise ValueError(
            f"the gate signature on version {version} of '{model}' for alias "
            f"'{alias}' does not verify with gate key {gate_key.keyid[:8]} "
            "(forged, copied from another version, or tags edited)"
        )
    return decision


def manifest_from_tags(tags: Mapping[str, str], decision: Decision) -> dict[str, str] | None:
    """Per-file digests, trusted only if they hash to the signed artifacts digest."""
    raw = tags.get(TAG_MANIFEST)
    if not raw:
        return None
    try:
        manifest = json.loads(raw)
    except json.JSONDecodeError:
        return None
    if not isinstance(manifest, dict) or artifacts_digest(manifest) != decision.artifacts_sha256:
        return None
    return {str(k): str(v) for k, v in manifest.items()}
