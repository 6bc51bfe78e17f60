"""What the caller expects of the provenance: source, builder or signer, ref, issuer."""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass

from provenance.attest.slsa._formats import PROVENANCE_TYPES
from provenance.attest.slsa._policy import GITHUB_ISSUER, parse_version
from provenance.errors import UsageError

_GIT_DIGEST = re.compile(r"(?:[0-9a-f]{40}|[0-9a-f]{64})\Z")
_OWNER_REPO = re.compile(r"[A-Za-z0-9_.-]+/[A-Za-z0-9_.-]+\Z")


def parse_inputs(values: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """slsa-verifier's `--build-workflow-input KEY=VALUE`: exactly one `=`; a later key wins."""
    inputs: dict[str, str] = {}
    for value in values:
        parts = value.split("=")
        if len(parts) != 2 or not parts[0]:
            raise UsageError(f"--build-workflow-input {value!r}: expected KEY=VALUE")
        inputs[parts[0]] = parts[1]
    return tuple(inputs.items())


@dataclass(frozen=True)
class Expectations:
    """Validated when built: contradictory or empty expectations are usage errors (exit 2).

    Mirrors slsa-verifier (`--source-uri`, `--builder-id`, `--source-branch`, `--source-tag`,
    `--source-versioned-tag`, `--build-workflow-input`) and `gh attestation verify` (`--repo`,
    `--owner`, `--signer-workflow`, `--signer-repo`, `--signer-digest`, `--source-ref`,
    `--source-digest`, `--deny-self-hosted-runners`, `--predicate-type`,
    `--cert-oidc-issuer`).
    """

    source_uri: str | None = None
    builder_id: str | None = None
    branch: str | None = None
    tag: str | None = None
    versioned_tag: str | None = None
    owner: str | None = None
    signer_workflow: str | None = None
    issuer: str = GITHUB_ISSUER
    signer_repo: str | None = None
    signer_digest: str | None = None
    source_ref: str | None = None
    source_digest: str | None = None
    deny_self_hosted: bool = False
    predicate_type: str | None = None
    workflow_inputs: tuple[tuple[str, str], ...] = ()

    def __post_init__(self) -> None:
        if not (self.source_uri or self.owner):
            raise UsageError("give the expected source: --source-uri/--repo or --owner")
        if self.source_uri and "@" in self.source_uri:
            # The repository comparison drops a claimed URI's @REF; an expected one would be
            # dropped with it, and a ref the caller meant to pin would go unchecked.
            raise UsageError(
                f"--source-uri {self.source_uri!r}: names a repository, not a ref or a user "
                "(give the ref with --source-branch, --source-tag or --source-ref)"
            )
        refs = (self.branch, self.tag, self.versioned_tag, self.source_ref)
        if sum(bool(x) for x in refs) > 1:
            raise UsageError(
                "--source-branch, --source-tag, --source-versioned-tag and --source-ref "
                "exclude each other"
            )
        if self.versioned_tag and parse_version(self.versioned_tag) is None:
            raise UsageError(
                f"--source-versioned-tag {self.versioned_tag!r}: expected vMAJOR[.MINOR[.PATCH]]"
            )
        if not self.issuer.startswith("https://"):
            raise UsageError(f"--cert-oidc-issuer {self.issuer!r}: expected an https:// URL")
        self._check_gh_flags()

    def _check_gh_flags(self) -> None:
        """The rules gh has for its flags, plus formats that could never match a certificate."""
        if self.signer_repo and self.signer_workflow:
            raise UsageError("--signer-repo and --signer-workflow exclude each other (as in gh)")
        if self.signer_repo and not _OWNER_REPO.match(self.signer_repo):
            raise UsageError(f"--signer-repo {self.signer_repo!r}: expected OWNER/REPO")
        if self.source_ref and not self.source_ref.startswith("refs/"):
            raise UsageError(
                f"--source-ref {self.source_ref!r}: expected a full git ref "
                "(refs/heads/BRANCH, refs/tags/TAG)"
            )
        for flag, digest in (
            ("--signer-digest", self.signer_digest),
            ("--source-digest", self.source_digest),
        ):
            if digest and not _GIT_DIGEST.match(digest):
                raise UsageError(f"{flag} {digest!r}: expected a git commit (40 or 64 hex digits)")
        if self.predicate_type and self.predicate_type not in PROVENANCE_TYPES:
            raise UsageError(
                f"--predicate-type {self.predicate_type!r}: slsa verify checks SLSA provenance "
                f"({', '.join(PROVENANCE_TYPES)})"
            )

    @property
    def ref(self) -> str | None:
        """The exact ref expected, when one is (a versioned tag is a range, not a ref)."""
        if self.source_ref:
            return self.source_ref
        if self.branch:
            return f"refs/heads/{self.branch.removeprefix('refs/heads/')}"
        return f"refs/tags/{self.tag.removeprefix('refs/tags/')}" if self.tag else None

    @property
    def certificate_only(self) -> list[tuple[str, str]]:
        """(flag, value) of the expectations only a certificate can meet.

        A key names no workflow, so none of these can hold for key-signed provenance.
        """
        named = (
            ("--builder-id", self.builder_id),
            ("--signer-workflow", self.signer_workflow),
            ("--signer-repo", self.signer_repo),
            ("--signer-digest", self.signer_digest),
            ("--deny-self-hosted-runners", self.deny_self_hosted),
        )
        return [(flag, str(value)) for flag, value in named if value]

    @property
    def needs_builtin(self) -> bool:
        """Expectations slsa-verifier has no flag for (gh's): only the built-in verifier checks."""
        return bool(
            self.issuer != GITHUB_ISSUER
            or self.owner
            or self.signer_workflow
            or self.signer_repo
            or self.signer_digest
            or self.source_ref
            or self.source_digest
            or self.deny_self_hosted
            or self.predicate_type
        )
