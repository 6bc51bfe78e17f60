"""What the caller expects of the provenance: source, builder or signer, ref, issuer."""

from __future__ import annotations

from dataclasses import dataclass

from provenance.errors import UsageError
from provenance.slsa._policy import GITHUB_ISSUER, parse_version


@dataclass(frozen=True)
class Expectations:
    """Validated when built: contradictory or empty expectations are usage errors (exit 2).

    Mirrors slsa-verifier (`--source-uri`, `--builder-id`, `--source-branch`, `--source-tag`,
    `--source-versioned-tag`) and `gh attestation verify` (`--repo`, `--owner`,
    `--signer-workflow`, `--cert-oidc-issuer`).
    """

    source_uri: str | None = None
    builder_id: str | None = None
    branch: str | None = None
    tag: str | None = None
    versioned_tag: str | None = None
    owner: str | None = None
    signer_workflow: str | None = None
    issuer: str = GITHUB_ISSUER

    def __post_init__(self) -> None:
        if not (self.source_uri or self.owner):
            raise UsageError("give the expected source: --source-uri/--repo or --owner")
        if sum(bool(x) for x in (self.branch, self.tag, self.versioned_tag)) > 1:
            raise UsageError(
                "--source-branch, --source-tag and --source-versioned-tag exclude each other"
            )
        if self.versioned_tag and parse_version(self.versioned_tag) is None:
            raise UsageError(
                f"--source-versioned-tag {self.versioned_tag!r}: expected vMAJOR[.MINOR[.PATCH]]"
            )
        if not self.issuer.startswith("https://"):
            raise UsageError(f"--cert-oidc-issuer {self.issuer!r}: expected an https:// URL")

    @property
    def ref(self) -> str | None:
        """The exact ref expected, when one is (a versioned tag is a range, not a ref)."""
        if self.branch:
            return f"refs/heads/{self.branch.removeprefix('refs/heads/')}"
        return f"refs/tags/{self.tag.removeprefix('refs/tags/')}" if self.tag else None
