"""Attestation checks the gate runs on the model files it is about to vouch for.

`promote` takes a list of checks; each verifies some attestation against the downloaded files
and says what it established: its failures, the attestations it read (name and sha256 of the
very bytes verified: they go into the VSA's `inputAttestations`) and the verified levels the
evidence supports. A new kind of attestation is one class with a `check` method.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from provenance.hashing import Manifest

# The Build level a verified Sigstore signer supports (on a GitHub-hosted runner); a key, or
# anything else, supports Build L1 only.
_LEVELS = {"slsa-github-generator": "SLSA_BUILD_LEVEL_3", "github-workflow": "SLSA_BUILD_LEVEL_2"}


@dataclass(frozen=True)
class CheckOutcome:
    """What one attestation check established about the model files."""

    failures: tuple[str, ...] = ()
    inputs: tuple[tuple[str, str], ...] = ()  # (name, sha256 of the bytes verified)
    levels: tuple[str, ...] = ()  # only meaningful when there are no failures

    @property
    def ok(self) -> bool:
        return not self.failures


class AttestationCheck(Protocol):
    """One attestation the model files must carry; `check` must not raise on a mismatch."""

    def check(self, files_dir: str, files: Manifest) -> CheckOutcome:
        """Verify against the files under `files_dir` (`files`: path -> sha256)."""
        ...


@dataclass(frozen=True)
class SlsaCheck:
    """SLSA provenance that must cover every model file, from the expected source.

    The provenance is read once: the digest the VSA signs is of the very bytes verified. The
    level is what the verified signer supports: Build L3 only for a trusted isolated builder
    (slsa-github-generator), L2 for another GitHub-hosted workflow's Sigstore signature, L1 for
    a key (it proves who signed, not how the build ran).
    """

    provenance: str
    source_uri: str
    key: Any = None  # public key for key-signed provenance, else Sigstore
    trusted_root: str | None = None
    builder_id: str | None = None

    def check(self, files_dir: str, files: Manifest) -> CheckOutcome:
        from provenance.attest.slsa.verify import Expectations, ProvenanceFile, verify_builtin

        loaded = ProvenanceFile.read(self.provenance)
        failures: list[str] = []
        levels: set[str] = set()
        for rel in sorted(files.files):
            result = verify_builtin(
                os.path.join(files_dir, rel),
                loaded,
                Expectations(self.source_uri, self.builder_id),
                trusted_root=self.trusted_root,
                key=self.key,
            )
            if not result.ok:
                failures.append(f"SLSA provenance for '{rel}': {result.failures[0]}")
            hosted = result.facts.get("runner_environment") == "github-hosted"
            level = _LEVELS.get(str(result.producer)) if hosted else None
            levels.add(level or "SLSA_BUILD_LEVEL_1")
        # Every file is only as well built as the weakest attestation covering it.
        weakest = min(levels) if levels else "SLSA_BUILD_LEVEL_1"
        return CheckOutcome(
            tuple(failures), ((os.path.basename(loaded.path), loaded.sha256),), (weakest,)
        )
