"""The gate's decision as a SLSA Verification Summary Attestation, beside the decision record.

The decision record (`provenance.decision.<alias>`) is what the plugin and `fetch` decide on; the
VSA (`provenance.vsa.<alias>`) says the same in the format consumers' tools read (slsa-verifier's
`verify-vsa`). The decision carries the VSA's sha256, so the two cannot be mixed and matched.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from provenance._fs import canonical_json
from provenance.errors import ProvenanceError, VerificationError
from provenance.gate._decision import MAX_TAG_VALUE, VSA_PREFIX, vsa_tag

if TYPE_CHECKING:
    from securesystemslib.signer import Key, Signer

VSA_TYPE = "https://slsa.dev/verification_summary/v1"


@dataclass(frozen=True)
class SignedVsa:
    envelope: dict[str, Any]

    @property
    def text(self) -> str:
        """The tag value (compact envelope JSON)."""
        return canonical_json(self.envelope).decode()

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode()).hexdigest()

    @property
    def fits_a_tag(self) -> bool:
        return len(self.text) <= MAX_TAG_VALUE


def resource_uri(model: str, version: str) -> str:
    return f"models:/{model}/{version}"


def sign_vsa(
    *,
    model: str,
    version: str,
    files: Mapping[str, str],
    policy_uri: str,
    policy_sha256: str,
    inputs: Sequence[tuple[str, str]],
    passed: bool,
    levels: Sequence[str],
    signer: Signer,
) -> SignedVsa:
    """Build and sign the VSA for a registered version (subjects: the model files)."""
    from provenance.attest import build_vsa

    statement = build_vsa(
        subjects=files,
        resource_uri=resource_uri(model, version),
        policy_uri=policy_uri,
        policy_sha256=policy_sha256,
        input_attestations=inputs,
        passed=passed,
        verified_levels=levels,
    )
    return SignedVsa(statement.sign(signer))


def check_stored_vsa(
    tags: Mapping[str, str],
    gate_key: Key,
    model: str,
    version: str,
    alias: str,
    expected_sha256: str,
    files: Mapping[str, str] | None,
) -> list[str]:
    """Failures of the VSA stored for `alias`.

    Empty when it is the one the decision names, signed by the gate, about this version,
    PASSED, and — when `files` are given — exactly about them.
    """
    from provenance.attest import VerificationSummary, check_vsa, read_statement

    value = tags.get(vsa_tag(alias))
    if value is None:
        return [f"the decision names a VSA but '{vsa_tag(alias)}' is missing"]
    if hashlib.sha256(value.encode()).hexdigest() != expected_sha256:
        return [f"'{vsa_tag(alias)}' is not the VSA the decision names (replaced)"]
    try:
        signed = read_statement(
            value.encode(), [gate_key], VerificationSummary, source=vsa_tag(alias)
        )
    except ProvenanceError as exc:
        return [str(exc)]
    return check_vsa(
        signed, files=files or signed.statement.digests(), resource_uri=resource_uri(model, version)
    )


def check_vsa_record(key: str, value: str, gate_key: Key, model: str, version: str) -> None:
    """For the plugin: a `provenance.vsa.*` tag must be a gate-signed VSA about this version."""
    from provenance.attest import VerificationSummary, read_statement

    if not key.startswith(VSA_PREFIX):
        raise VerificationError(f"'{key}' is not a VSA tag")
    try:
        json.loads(value)
    except (json.JSONDecodeError, RecursionError):
        raise VerificationError(f"'{key}' is not a DSSE envelope") from None
    signed = read_statement(value.encode(), [gate_key], VerificationSummary, source=key)
    uri = signed.statement.predicate.resource_uri
    if uri != resource_uri(model, version):
        raise VerificationError(f"'{key}' is a VSA about {uri}, not {resource_uri(model, version)}")
