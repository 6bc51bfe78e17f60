"""`provenance slsa verify` on real provenance from five producers, each row checked against
the expectation its anchor has for the same input.

Anchors: slsa-verifier's regression tests (cli/slsa-verifier/main_regression_test.go, named by
test function and case), gh's integration tests (pkg/cmd/attestation/verify/
verify_integration_test.go) and, for gh's certificate flags, its `newEnforcementCriteria`
(policy.go: each flag is one certificate extension compared exactly), and sigstore-conformance's
`bundle-verify` cases (a `_fail` suffix means the bundle must be refused). Where this verifier differs from an anchor, the row says
so: it never passes what an anchor refuses. The vectors are vendored (vectors/SOURCES.md);
slsa-verifier itself cannot be installed here (a Go binary, in no registry reachable here), so
the table runs through the built-in verifier only.
"""

from __future__ import annotations

import base64
import json
import socket
from dataclasses import dataclass
from pathlib import Path

import pytest

VECTORS = Path(__file__).parents[1] / "vectors"
SV = VECTORS / "slsa-verifier"
GENERIC = SV / "gha_generic" / "v2.1.0"
GO = SV / "gha_go" / "v2.1.0"
BCR = SV / "bcr"
GH = VECTORS / "gh"
CONF = VECTORS / "conformance"
SP = VECTORS / "sigstore-python"

GENERIC_BIN = GENERIC / "binary-linux-amd64-workflow_dispatch"  # same bytes for every event
GO_DIGEST = "sha256:f6ab7ad0c7549b5a4942c3b0690519d791c28c4c0f8b286208cb40da3322a066"
RULES_LINT_DIGEST = "sha256:1636f443b01c9ee310ee5834956d0dce374c3d3bf8d4cebc9f6b86f8304b4982"
EXAMPLE = "github.com/slsa-framework/example-package"
GEN = "https://github.com/slsa-framework/slsa-github-generator/.github/workflows/"
BCR_PUBLISH = "https://github.com/bazel-contrib/publish-to-bcr/.github/workflows/publish.yaml"
BCR_RELEASE = "https://github.com/bazel-contrib/.github/.github/workflows/release_ruleset.yaml"
ATTEST_WF = "github/artifact-attestations-workflows/.github/workflows/attest.yml"
ATTEST_SHA = "09b495c3f12c7881b3cc17209a327792065c1a1d"
BEACON = "sigstore-conformance/extremely-dangerous-public-oidc-beacon"
HAMMER = "https://token.actions.githubusercontent.com/hammer-time"
STAGING = SP / "trusted_root.staging.json"
REGRESSION = "slsa-verifier Test_runVerifyGHAArtifactPath"
GH_IT = "gh verify_integration_test.go"
GH_POLICY = "gh policy.go newEnforcementCriteria"
ATTEST_REPO = "github/artifact-attestations-workflows"
ATTEST_SOURCE_SHA = (
    "95baf27389e83e6a5c48f42e190d48d7abcea19e"  # the cert's Source Repository Digest
)
V1 = "https://slsa.dev/provenance/v1"
V02 = "https://slsa.dev/provenance/v0.2"
INPUTS = SV / "workflow-inputs"
REUSABLE = ("--repo", "malancas/attest-demo", "--signer-workflow", ATTEST_WF)


@dataclass(frozen=True)
class Row:
    id: str
    artifact: Path | str  # a path, or "sha256:…" verified with --artifact-digest
    provenance: Path
    flags: tuple[str, ...]
    code: int
    words: str  # must appear in the verdict (stdout) or, for exit 3, the error (stderr)
    anchor: str


def generic(event: str) -> Path:
    return GENERIC / f"binary-linux-amd64-{event}.intoto.jsonl"


def go(event: str) -> Path:
    return GO / f"binary-linux-amd64-{event}.intoto.jsonl"


def conf(case: str) -> Path:
    return CONF / case / "bundle.sigstore.json"


WD = "workflow_dispatch"
ROWS = [
    # --- slsa-github-generator, generic generator v2.1.0 (Sigstore bundle in .intoto.jsonl)
    Row(
        "generic-default",
        GENERIC_BIN,
        generic(WD),
        ("--source-uri", EXAMPLE),
        0,
        "PASS",
        f"{REGRESSION} 'valid main branch default'",
    ),
    Row(
        "generic-branch-main",
        GENERIC_BIN,
        generic(WD),
        ("--source-uri", EXAMPLE, "--source-branch", "main"),
        0,
        "PASS",
        f"{REGRESSION} 'valid main branch set'",
    ),
    Row(
        "generic-branch-master",
        GENERIC_BIN,
        generic(WD),
        ("--source-uri", EXAMPLE, "--source-branch", "master"),
        1,
        "source branch",
        f"{REGRESSION} 'wrong branch master' (ErrorMismatchBranch)",
    ),
    Row(
        "generic-wrong-source-append",
        GENERIC_BIN,
        generic(WD),
        ("--source-uri", "github.com/slsa-framework/example-packageA"),
        1,
        "source repository",
        f"{REGRESSION} 'wrong source append A' (ErrorMismatchSource)",
    ),
    Row(
        "generic-wrong-source-prepend",
        GENERIC_BIN,
        generic(WD),
        ("--source-uri", "github.com/Aslsa-framework/example-package"),
        1,
        "source repository",
        f"{REGRESSION} 'wrong source middle A' (ErrorMismatchSource)",
    ),
    Row(
        "generic-untrusted-builder-id",
        GENERIC_BIN,
        generic(WD),
        ("--source-uri", EXAMPLE, "--builder-id", GEN + "not-trusted.yml"),
        1,
        "builder id",
        f"{REGRESSION} 'valid main branch default - invalid builderID' "
        "(ErrorUntrustedReusableWorkflow)",
    ),
    Row(
        "generic-builder-full-ref",
        GENERIC_BIN,
        generic(WD),
        (
            "--source-uri",
            EXAMPLE,
            "--builder-id",
            GEN + "generator_generic_slsa3.yml@refs/tags/v2.1.0",
        ),
        0,
        "PASS",
        "slsa-verifier verifiers/utils/builder_test.go: full ref matches",
    ),
    Row(
        "generic-builder-short-ref",
        GENERIC_BIN,
        generic(WD),
        ("--source-uri", EXAMPLE, "--builder-id", GEN + "generator_generic_slsa3.yml@v2.1.0"),
        0,
        "PASS",
        "slsa-verifier builder_test.go: short tag ref matches refs/tags/v2.1.0",
    ),
    Row(
        "generic-builder-no-ref",
        GENERIC_BIN,
        generic(WD),
        ("--source-uri", EXAMPLE, "--builder-id", GEN + "generator_generic_slsa3.yml"),
        0,
        "PASS",
        "slsa-verifier builder_test.go: no ref matches any version",
    ),
    Row(
        "generic-builder-wrong-ref",
        GENERIC_BIN,
        generic(WD),
        ("--source-uri", EXAMPLE, "--builder-id", GEN + "generator_generic_slsa3.yml@v2.0.0"),
        1,
        "builder id",
        "slsa-verifier builder_test.go: mismatching version is refused",
    ),
    Row(
        "generic-tag-on-dispatch",
        GENERIC_BIN,
        generic(WD),
        ("--source-uri", EXAMPLE, "--source-tag", "v1.2.3"),
        1,
        "source tag",
        f"{REGRESSION} 'tag no match empty tag workflow_dispatch' (ErrorInvalidRef)",
    ),
    Row(
        "generic-versioned-on-dispatch",
        GENERIC_BIN,
        generic(WD),
        ("--source-uri", EXAMPLE, "--source-versioned-tag", "v1"),
        1,
        "source versioned tag",
        f"{REGRESSION} 'versioned tag no match empty tag workflow_dispatch' (ErrorInvalidRef)",
    ),
    Row(
        "generic-tag-exact",
        GENERIC_BIN,
        generic("push-v13.0.30"),
        ("--source-uri", EXAMPLE, "--source-tag", "v13.0.30"),
        0,
        "refs/tags/v13.0.30",
        f"{REGRESSION}: the provenance's own tag (complement of 'tag v13.0.29 no match')",
    ),
    Row(
        "generic-tag-v13.0.29",
        GENERIC_BIN,
        generic("push-v13.0.30"),
        ("--source-uri", EXAMPLE, "--source-tag", "v13.0.29"),
        1,
        "source tag",
        f"{REGRESSION} 'tag v13.0.29 no match v13.0.30' (ErrorMismatchTag)",
    ),
    Row(
        "generic-tag-v13",
        GENERIC_BIN,
        generic("push-v13.0.30"),
        ("--source-uri", EXAMPLE, "--source-tag", "v13"),
        1,
        "source tag",
        f"{REGRESSION} 'tag v13 no match v13.0.30' (ErrorMismatchTag)",
    ),
    Row(
        "generic-versioned-v13.0",
        GENERIC_BIN,
        generic("push-v13.0.30"),
        ("--source-uri", EXAMPLE, "--source-versioned-tag", "v13.0"),
        0,
        "PASS",
        f"{REGRESSION} 'versioned v13.0 match push-v13.0.30'",
    ),
    Row(
        "generic-versioned-v13.1",
        GENERIC_BIN,
        generic("push-v13.0.30"),
        ("--source-uri", EXAMPLE, "--source-versioned-tag", "v13.1"),
        1,
        "source versioned tag",
        f"{REGRESSION} 'versioned v13.1 no match push-v13.0.30' (ErrorMismatchVersionedTag)",
    ),
    Row(
        "generic-versioned-v14.0",
        GENERIC_BIN,
        generic("push-v14"),
        ("--source-uri", EXAMPLE, "--source-versioned-tag", "v14.0"),
        0,
        "PASS",
        f"{REGRESSION} 'versioned v14.0 match push-v14'",
    ),
    Row(
        "generic-versioned-v14.1",
        GENERIC_BIN,
        generic("push-v14"),
        ("--source-uri", EXAMPLE, "--source-versioned-tag", "v14.1"),
        1,
        "source versioned tag",
        f"{REGRESSION} 'versioned v14.1 no match push-v14' (ErrorMismatchVersionedTag)",
    ),
    Row(
        "generic-versioned-v14.2.1",
        GENERIC_BIN,
        generic("push-v14.2"),
        ("--source-uri", EXAMPLE, "--source-versioned-tag", "v14.2.1"),
        1,
        "source versioned tag",
        f"{REGRESSION} 'versioned v14.2.1 match push-v14.2' (expects ErrorMismatchVersionedTag)",
    ),
    Row(
        "generic-custom-root",
        GENERIC_BIN,
        generic(WD),
        ("--source-uri", EXAMPLE, "--trusted-root", str(GH / "trusted_root.json")),
        0,
        "PASS",
        "gh verify_test.go: --custom-trusted-root with the trusted_root.json gh's tests use",
    ),
    Row(
        "go-versioned-v14.2.3",
        GO_DIGEST,
        go("push-v14.2"),
        ("--source-uri", EXAMPLE, "--source-versioned-tag", "v14.2.3"),
        1,
        "source versioned tag",
        f"{REGRESSION} 'versioned v14.2.3 match push-v14.2' (expects ErrorMismatchVersionedTag)",
    ),
    Row(
        "gh-npm-bundle-v0.1",
        GH / "sigstore-js-2.1.0.tgz",
        GH / "sigstore-js-2.1.0-bundle-v0.1.json",
        ("--owner", "sigstore", "--digest-alg", "sha512"),
        0,
        "PASS",
        "gh verify_test.go: bundle media type version=0.1 (intoto/0.0.2 entry), sha512 subject",
    ),
    Row(
        "gh-npm-bundle-v0.1-sha256",
        GH / "sigstore-js-2.1.0.tgz",
        GH / "sigstore-js-2.1.0-bundle-v0.1.json",
        ("--owner", "sigstore"),
        1,
        "no subject has the artifact's sha256",
        "gh: the default --digest-alg sha256 finds no subject (npm names only sha512)",
    ),
    Row(
        "generic-versioned-v14-of-v14.2",
        GENERIC_BIN,
        generic("push-v14.2"),
        ("--source-uri", EXAMPLE, "--source-versioned-tag", "v14"),
        0,
        "PASS",
        f"{REGRESSION} 'versioned v14 match push-v14.2'",
    ),
    Row(
        "generic-wrong-artifact",
        BCR / "MODULE.bazel",
        generic(WD),
        ("--source-uri", EXAMPLE),
        1,
        "no subject has the artifact's sha256",
        "slsa-verifier: ErrorMismatchHash for an artifact the provenance does not name",
    ),
    Row(
        "generic-untrusted-root",
        GENERIC_BIN,
        generic(WD),
        ("--source-uri", EXAMPLE, "--trusted-root", str(STAGING)),
        1,
        "trusted root",
        "sigstore-conformance 'bundle-from-wrong-instance_fail' (production bundle, staging root)",
    ),
    Row(
        "generic-v2.0.0-bare-dsse",
        GENERIC_BIN,
        SV / "gha_generic" / "v2.0.0" / "binary-linux-amd64-workflow_dispatch.intoto.jsonl",
        ("--source-uri", EXAMPLE),
        3,
        "looked up online",
        f"{REGRESSION} v2.0.0 (passes online only: its Rekor entry is fetched; never passes here)",
    ),
    # --- slsa-github-generator, Go builder v2.1.0 (artifact by digest: the binary is 2.2 MB)
    Row(
        "go-default",
        GO_DIGEST,
        go(WD),
        ("--source-uri", EXAMPLE),
        0,
        "builder_go_slsa3.yml",
        f"{REGRESSION} 'valid main branch default' (Go builder)",
    ),
    Row(
        "go-versioned-v14",
        GO_DIGEST,
        go("push-v14"),
        ("--source-uri", EXAMPLE, "--source-versioned-tag", "v14"),
        0,
        "PASS",
        f"{REGRESSION} 'versioned v14 match push-v14' (Go builder)",
    ),
    Row(
        "go-tag-v13",
        GO_DIGEST,
        go("push-v13.0.30"),
        ("--source-uri", EXAMPLE, "--source-tag", "v13"),
        1,
        "source tag",
        f"{REGRESSION} 'tag v13 no match v13.0.30' (Go builder)",
    ),
    Row(
        "go-wrong-builder",
        GO_DIGEST,
        go(WD),
        ("--source-uri", EXAMPLE, "--builder-id", GEN + "generator_generic_slsa3.yml"),
        1,
        "builder id",
        f"{REGRESSION}: builders=[goBuilder] cases refuse another builder id",
    ),
    Row(
        "go-tampered-digest",
        "sha256:" + "f6ab7ad0" + "0" * 56,
        go(WD),
        ("--source-uri", EXAMPLE),
        1,
        "no subject has the artifact's sha256",
        "slsa-verifier ErrorMismatchHash",
    ),
    Row(
        "go-wrong-source",
        GO_DIGEST,
        go(WD),
        ("--source-uri", "github.com/laurentsimon/slsa-verifier-test-gen"),
        1,
        "source repository",
        f"{REGRESSION} 'wrong source prepend A' (Go builder)",
    ),
    # --- Bazel Central Registry publishing (GitHub attestations from reusable workflows)
    Row(
        "bcr-module-publisher",
        BCR / "MODULE.bazel",
        BCR / "MODULE.bazel.intoto.jsonl",
        ("--source-uri", "github.com/aspect-build/rules_lint", "--builder-id", BCR_PUBLISH),
        0,
        "PASS",
        "slsa-verifier Test_runVerifyGithubAttestation 'module.bazel using publishing builder'",
    ),
    Row(
        "bcr-archive-releaser",
        RULES_LINT_DIGEST,
        BCR / "rules_lint-v1.3.1.tar.gz.intoto.jsonl",
        ("--source-uri", "github.com/aspect-build/rules_lint", "--builder-id", BCR_RELEASE),
        0,
        "PASS",
        "slsa-verifier Test_runVerifyGithubAttestation 'source archive using release builder'",
    ),
    Row(
        "bcr-wrong-signer",
        BCR / "MODULE-wrong-signer.bazel",
        BCR / "MODULE-wrong-signer.bazel.intoto.jsonl",
        ("--source-uri", "github.com/aspect-build/rules_lint", "--builder-id", BCR_PUBLISH),
        1,
        "builder id",
        "slsa-verifier Test_runVerifyGithubAttestation 'module.bazel wrong "
        "signer' (ErrorUntrustedReusableWorkflow)",
    ),
    Row(
        "bcr-module-no-builder",
        BCR / "MODULE.bazel",
        BCR / "MODULE.bazel.intoto.jsonl",
        ("--source-uri", "github.com/aspect-build/rules_lint"),
        1,
        "signer workflow",
        "slsa-verifier Test_runVerifyGithubAttestation 'module.bazel no builder id' "
        "(ErrorUntrustedReusableWorkflow)",
    ),
    Row(
        "bcr-archive-no-builder",
        RULES_LINT_DIGEST,
        BCR / "rules_lint-v1.3.1.tar.gz.intoto.jsonl",
        ("--source-uri", "github.com/aspect-build/rules_lint"),
        1,
        "signer workflow",
        "slsa-verifier Test_runVerifyGithubAttestation 'source archive no builder id'",
    ),
    Row(
        "bcr-archive-wrong-builder",
        RULES_LINT_DIGEST,
        BCR / "rules_lint-v1.3.1.tar.gz.intoto.jsonl",
        ("--source-uri", "github.com/aspect-build/rules_lint", "--builder-id", BCR_PUBLISH),
        1,
        "builder id",
        "slsa-verifier verify-github-attestation: builder id must equal signer",
    ),
    # --- GitHub artifact attestations (actions/attest-build-provenance), gh semantics
    Row(
        "gh-reusable-signer-workflow",
        GH / "reusable-workflow-artifact",
        GH / "reusable-workflow-attestation.sigstore.json",
        ("--repo", "malancas/attest-demo", "--signer-workflow", ATTEST_WF),
        0,
        "PASS",
        f"{GH_IT} ReusableWorkflowSignerWorkflow 'valid signer workflow without host'",
    ),
    Row(
        "gh-reusable-signer-workflow-host",
        GH / "reusable-workflow-artifact",
        GH / "reusable-workflow-attestation.sigstore.json",
        ("--owner", "malancas", "--signer-workflow", "github.com/" + ATTEST_WF),
        0,
        "PASS",
        f"{GH_IT} ReusableWorkflowSignerWorkflow 'valid signer workflow with host'",
    ),
    Row(
        "gh-reusable-sha-pinned",
        GH / "reusable-workflow-artifact",
        GH / "reusable-workflow-attestation.sigstore.json",
        (
            "--repo",
            "malancas/attest-demo",
            "--builder-id",
            f"https://github.com/{ATTEST_WF}@{ATTEST_SHA}",
        ),
        0,
        "PASS",
        f"{GH_IT} ReusableWorkflow 'with repo and valid reusable workflow SAN' (SHA-pinned)",
    ),
    Row(
        "gh-reusable-invalid-signer",
        GH / "reusable-workflow-artifact",
        GH / "reusable-workflow-attestation.sigstore.json",
        (
            "--repo",
            "malancas/attest-demo",
            "--signer-workflow",
            "foo/bar/.github/workflows/attest.yml",
        ),
        1,
        "signer workflow",
        f"{GH_IT} ReusableWorkflowSignerWorkflow 'with invalid signer workflow'",
    ),
    Row(
        "gh-reusable-repo-only",
        GH / "reusable-workflow-artifact",
        GH / "reusable-workflow-attestation.sigstore.json",
        ("--repo", "malancas/attest-demo"),
        1,
        "reusable workflow",
        "gh verify: --repo alone sets the SAN regex to ^https://github.com/REPO/, which a "
        "reusable-workflow signer does not match",
    ),
    Row(
        "gh-reusable-wrong-repo",
        GH / "reusable-workflow-artifact",
        GH / "reusable-workflow-attestation.sigstore.json",
        ("--repo", "malancas/fakerepo", "--signer-workflow", ATTEST_WF),
        1,
        "source repository",
        f"{GH_IT} 'with valid owner and invalid repo' (expected SourceRepositoryURI …)",
    ),
    Row(
        "gh-reusable-wrong-owner",
        GH / "reusable-workflow-artifact",
        GH / "reusable-workflow-attestation.sigstore.json",
        ("--owner", "fakeowner", "--signer-workflow", ATTEST_WF),
        1,
        "owner",
        f"{GH_IT} 'with invalid owner' (expected SourceRepositoryOwnerURI …)",
    ),
    Row(
        "gh-reusable-tampered",
        BCR / "MODULE.bazel",
        GH / "reusable-workflow-attestation.sigstore.json",
        ("--repo", "malancas/attest-demo", "--signer-workflow", ATTEST_WF),
        1,
        "no subject has the artifact's sha256",
        "gh verify: no attestation for this digest",
    ),
    Row(
        "gh-custom-issuer",
        GH / "custom-issuer-artifact",
        GH / "custom-issuer.sigstore.json",
        ("--owner", "too-legit", "--cert-oidc-issuer", HAMMER),
        0,
        "PASS",
        f"{GH_IT} CustomIssuer 'with owner and valid workflow SAN regex'",
    ),
    Row(
        "gh-custom-issuer-signer",
        GH / "custom-issuer-artifact",
        GH / "custom-issuer.sigstore.json",
        (
            "--repo",
            "too-legit/attest",
            "--cert-oidc-issuer",
            HAMMER,
            "--signer-workflow",
            "too-legit/attest/.github/workflows/integration.yml@refs/heads/main",
        ),
        0,
        "PASS",
        f"{GH_IT} CustomIssuer 'with repo and valid workflow SAN'",
    ),
    Row(
        "gh-custom-issuer-default",
        GH / "custom-issuer-artifact",
        GH / "custom-issuer.sigstore.json",
        ("--owner", "too-legit"),
        1,
        "certificate OIDC issuer",
        "gh verify: --cert-oidc-issuer defaults to GitHub's; an enterprise issuer must be given",
    ),
    Row(
        "gh-custom-issuer-branch",
        GH / "custom-issuer-artifact",
        GH / "custom-issuer.sigstore.json",
        ("--repo", "too-legit/attest", "--cert-oidc-issuer", HAMMER, "--source-branch", "dev"),
        1,
        "source branch",
        "gh verify --source-ref: SourceRepositoryRef must equal",
    ),
    Row(
        "gh-private-tsa-only",
        GH / "github_provenance_demo-0.0.12-py3-none-any.whl",
        GH / "github_provenance_demo-0.0.12-py3-none-any-bundle.jsonl",
        ("--repo", "actions/attest-demo", "--trusted-root", "github"),
        0,
        "PASS",
        "gh verify_test.go verifies it against GitHub's root (timestamp only, no log entry)",
    ),
    Row(
        "gh-private-tsa-only-public-good",
        GH / "github_provenance_demo-0.0.12-py3-none-any.whl",
        GH / "github_provenance_demo-0.0.12-py3-none-any-bundle.jsonl",
        ("--repo", "actions/attest-demo"),
        1,
        "timestamp-only bundles are accepted only with a root without logs",
        "gh: the public-good root has no authority for GitHub's instance",
    ),
    Row(
        "gh-private-tsa-only-wrong-owner",
        GH / "github_provenance_demo-0.0.12-py3-none-any.whl",
        GH / "github_provenance_demo-0.0.12-py3-none-any-bundle.jsonl",
        ("--owner", "malancas", "--trusted-root", "github"),
        1,
        "source repository owner",
        f"{GH_POLICY}: --owner compared with the certificate's owner",
    ),
    Row(
        "gh-missing-cert",
        GH / "github_provenance_demo-0.0.12-py3-none-any.whl",
        GH / "github_provenance_demo-0.0.12-py3-none-any-bundle-missing-cert.jsonl",
        ("--owner", "malancas"),
        3,
        "no DSSE envelope",
        "gh verify_test.go: bundle missing cert",
    ),
    Row(
        "gh-missing-material",
        GH / "github_provenance_demo-0.0.12-py3-none-any.whl",
        GH
        / "github_provenance_demo-0.0.12-py3-none-any-bundle-missing-verification-material.jsonl",
        ("--owner", "malancas"),
        3,
        "no verification material",
        "gh verify_test.go: bundle missing verification material",
    ),
    Row(
        "gh-npm-intoto-entry",
        GH / "sigstore-js-2.1.0.tgz",
        GH / "sigstore-js-2.1.0-bundle.json",
        ("--owner", "sigstore", "--digest-alg", "sha512"),
        0,
        "PASS",
        f"{GH_IT} 'with valid owner' passes (sha512, intoto/0.0.2 entry; here offline, from "
        "the signed entry timestamp)",
    ),
    Row(
        "gh-npm-two-bundles",
        GH / "sigstore-js-2.1.0.tgz",
        GH / "sigstore-js-2.1.0_with_2_bundles.jsonl",
        ("--owner", "sigstore", "--digest-alg", "sha512"),
        0,
        "PASS",
        "gh verify_test.go: .jsonl with 2 bundles (same entry type)",
    ),
    # --- gh's certificate flags (--signer-repo, --signer-digest, --source-ref, --source-digest,
    # --deny-self-hosted-runners) and --predicate-type; slsa-verifier's --build-workflow-input
    Row(
        "gh-signer-repo",
        GH / "reusable-workflow-artifact",
        GH / "reusable-workflow-attestation.sigstore.json",
        ("--repo", "malancas/attest-demo", "--signer-repo", ATTEST_REPO),
        0,
        "PASS",
        f"{GH_IT} ReusableWorkflow 'with repo and valid reusable signer repo'",
    ),
    Row(
        "gh-signer-repo-owner",
        GH / "reusable-workflow-artifact",
        GH / "reusable-workflow-attestation.sigstore.json",
        ("--owner", "malancas", "--signer-repo", ATTEST_REPO),
        0,
        "PASS",
        f"{GH_IT} ReusableWorkflow 'with owner and valid reusable signer repo'",
    ),
    Row(
        "gh-signer-repo-case",
        GH / "reusable-workflow-artifact",
        GH / "reusable-workflow-attestation.sigstore.json",
        (
            "--repo",
            "malancas/attest-demo",
            "--signer-repo",
            "GitHub/Artifact-Attestations-Workflows",
        ),
        0,
        "PASS",
        f"{GH_POLICY}: --signer-repo becomes the SAN regex (?i)^https://github.com/OWNER/REPO/",
    ),
    Row(
        "gh-signer-repo-wrong",
        GH / "reusable-workflow-artifact",
        GH / "reusable-workflow-attestation.sigstore.json",
        ("--repo", "malancas/attest-demo", "--signer-repo", "malancas/attest-demo"),
        1,
        "signer repository",
        f"{GH_POLICY}: SAN regex ^https://github.com/malancas/attest-demo/ does not match the "
        "reusable workflow that signed",
    ),
    Row(
        "gh-signer-digest",
        GH / "reusable-workflow-artifact",
        GH / "reusable-workflow-attestation.sigstore.json",
        (*REUSABLE, "--signer-digest", ATTEST_SHA),
        0,
        "PASS",
        f"{GH_POLICY}: --signer-digest is the certificate's BuildSignerDigest",
    ),
    Row(
        "gh-signer-digest-wrong",
        GH / "reusable-workflow-artifact",
        GH / "reusable-workflow-attestation.sigstore.json",
        (*REUSABLE, "--signer-digest", ATTEST_SOURCE_SHA),
        1,
        "signer digest",
        f"{GH_POLICY}: BuildSignerDigest must equal (the source commit is not the signer's)",
    ),
    Row(
        "gh-source-ref",
        GH / "reusable-workflow-artifact",
        GH / "reusable-workflow-attestation.sigstore.json",
        (*REUSABLE, "--source-ref", "refs/heads/main"),
        0,
        "PASS",
        f"{GH_POLICY}: --source-ref is the certificate's SourceRepositoryRef",
    ),
    Row(
        "gh-source-ref-wrong",
        GH / "reusable-workflow-artifact",
        GH / "reusable-workflow-attestation.sigstore.json",
        (*REUSABLE, "--source-ref", "refs/heads/dev"),
        1,
        "source ref",
        f"{GH_POLICY}: SourceRepositoryRef must equal",
    ),
    Row(
        "generic-source-ref-tag",
        GENERIC_BIN,
        generic("push-v14"),
        ("--source-uri", EXAMPLE, "--source-ref", "refs/tags/v14"),
        0,
        "PASS",
        f"{GH_POLICY}: the same extension in a generator certificate",
    ),
    Row(
        "generic-source-ref-wrong",
        GENERIC_BIN,
        generic("push-v13.0.30"),
        ("--source-uri", EXAMPLE, "--source-ref", "refs/tags/v13"),
        1,
        "source ref",
        f"{GH_POLICY}: exact ref (no prefix match, as slsa-verifier's --source-tag)",
    ),
    Row(
        "gh-source-digest",
        GH / "reusable-workflow-artifact",
        GH / "reusable-workflow-attestation.sigstore.json",
        (*REUSABLE, "--source-digest", ATTEST_SOURCE_SHA),
        0,
        "PASS",
        f"{GH_POLICY}: --source-digest is the certificate's SourceRepositoryDigest",
    ),
    Row(
        "gh-source-digest-wrong",
        GH / "reusable-workflow-artifact",
        GH / "reusable-workflow-attestation.sigstore.json",
        (*REUSABLE, "--source-digest", ATTEST_SHA),
        1,
        "source digest",
        f"{GH_POLICY}: SourceRepositoryDigest must equal",
    ),
    Row(
        "gh-deny-self-hosted",
        GH / "custom-issuer-artifact",
        GH / "custom-issuer.sigstore.json",
        ("--owner", "too-legit", "--cert-oidc-issuer", HAMMER, "--deny-self-hosted-runners"),
        0,
        "PASS",
        f"{GH_POLICY}: --deny-self-hosted-runners needs RunnerEnvironment github-hosted",
    ),
    Row(
        "bcr-deny-self-hosted",
        BCR / "MODULE.bazel",
        BCR / "MODULE.bazel.intoto.jsonl",
        (
            "--source-uri",
            "github.com/aspect-build/rules_lint",
            "--builder-id",
            BCR_PUBLISH,
            "--deny-self-hosted-runners",
        ),
        0,
        "PASS",
        f"{GH_POLICY}: BCR's publishing workflow ran on a GitHub-hosted runner",
    ),
    Row(
        "bcr-predicate-type-v1",
        BCR / "MODULE.bazel",
        BCR / "MODULE.bazel.intoto.jsonl",
        (
            "--source-uri",
            "github.com/aspect-build/rules_lint",
            "--builder-id",
            BCR_PUBLISH,
            "--predicate-type",
            V1,
        ),
        0,
        "PASS",
        "gh verify: --predicate-type https://slsa.dev/provenance/v1 (its default)",
    ),
    Row(
        "gh-predicate-type-v02",
        GH / "reusable-workflow-artifact",
        GH / "reusable-workflow-attestation.sigstore.json",
        (*REUSABLE, "--predicate-type", V02),
        1,
        "predicate type",
        "gh verify: no attestation with the given predicate type",
    ),
    Row(
        "generic-predicate-type-v02",
        GENERIC_BIN,
        generic(WD),
        ("--source-uri", EXAMPLE, "--predicate-type", V02),
        0,
        "PASS",
        "slsa-verifier: generator_generic_slsa3 v2.1.0 writes SLSA v0.2",
    ),
    Row(
        "generic-predicate-type-v1",
        GENERIC_BIN,
        generic(WD),
        ("--source-uri", EXAMPLE, "--predicate-type", V1),
        1,
        "predicate type",
        "gh verify --predicate-type https://slsa.dev/provenance/v1 on v0.2 provenance: refused",
    ),
    Row(
        "generic-workflow-input-none",
        GENERIC_BIN,
        generic(WD),
        ("--source-uri", EXAMPLE, "--build-workflow-input", "release_version=v1"),
        1,
        "build workflow inputs",
        "slsa-verifier VerifyWorkflowInputs: the run's inputs are null (ErrorInvalidDssePayload)",
    ),
    Row(
        "generic-workflow-input-push",
        GENERIC_BIN,
        generic("push-v14"),
        ("--source-uri", EXAMPLE, "--build-workflow-input", "release_version=v1"),
        1,
        "workflow_dispatch",
        "slsa-verifier GetWorkflowInputs: expected 'workflow_dispatch' trigger, got push "
        "(ErrorMismatchWorkflowInputs)",
    ),
    Row(
        "gh-workflow-input",
        GH / "custom-issuer-artifact",
        GH / "custom-issuer.sigstore.json",
        ("--owner", "too-legit", "--cert-oidc-issuer", HAMMER, "--build-workflow-input", "a=b"),
        1,
        "records no GitHub event",
        "slsa-verifier verify-github-attestation --build-workflow-input: the actions buildType "
        "records no GITHUB_EVENT_PAYLOAD (ErrorInvalidDssePayload)",
    ),
    Row(
        "generic-workflow-inputs-v1.2.2",
        INPUTS / "workflow-inputs",
        INPUTS / "workflow-inputs.intoto.jsonl",
        (
            "--source-uri",
            "github.com/laurentsimon/slsa-on-github-test",
            "--build-workflow-input",
            "some_integer=123",
        ),
        3,
        "looked up online",
        f"{REGRESSION} 'workflow inputs match' passes online only (bare DSSE: its Rekor entry is "
        "fetched); test_slsa_flags.py checks its real predicate re-signed with a test key",
    ),
    # --- Sigstore conformance (bundle-verify), identity of the conformance beacon workflow
    Row(
        "conf-dsse-happy",
        CONF / "a.txt",
        conf("happy-path-intoto-in-dsse-v3"),
        ("--repo", BEACON),
        1,
        "builder id the statement names",
        "conformance 'happy-path-intoto-in-dsse-v3' passes as a bundle (signature); as SLSA "
        "provenance it is signed by the beacon workflow but names loosebazooka/aa-test's "
        "provenance.yaml as builder: refused, as slsa-verifier refuses signer != builder",
    ),
    Row(
        "conf-dsse-invalid-sig",
        CONF / "a.txt",
        conf("dsse-invalid-sig_fail"),
        ("--repo", BEACON),
        1,
        "invalid signature",
        "conformance 'dsse-invalid-sig_fail'",
    ),
    Row(
        "conf-dsse-mismatch-envelope",
        CONF / "a.txt",
        conf("dsse-mismatch-envelope_fail"),
        ("--repo", BEACON),
        1,
        "does not match",
        "conformance 'dsse-mismatch-envelope_fail'",
    ),
    Row(
        "conf-dsse-mismatch-sig",
        CONF / "a.txt",
        conf("dsse-mismatch-sig_fail"),
        ("--repo", BEACON),
        1,
        "do not match",
        "conformance 'dsse-mismatch-sig_fail'",
    ),
    Row(
        "conf-rekor2-happy",
        CONF / "a.txt",
        conf("rekor2-dsse-happy-path"),
        (
            "--repo",
            BEACON,
            "--trusted-root",
            str(CONF / "rekor2-dsse-happy-path" / "trusted_root.json"),
        ),
        3,
        "externalParameters",
        "conformance 'rekor2-dsse-happy-path' (its own staging root) passes as a bundle; as "
        "SLSA v1 its predicate lacks the required externalParameters (and names a repository, "
        "not the signing beacon workflow, as builder): refused as malformed provenance",
    ),
    Row(
        "conf-rekor2-production-root",
        CONF / "a.txt",
        conf("rekor2-dsse-happy-path"),
        ("--repo", BEACON),
        1,
        "trusted root",
        "conformance README: without trusted_root.json the production root applies; a staging "
        "bundle must not verify there ('bundle-from-wrong-instance_fail')",
    ),
    Row(
        "conf-rekor2-invalid-sig",
        CONF / "a.txt",
        conf("rekor2-dsse-invalid-sig_fail"),
        (
            "--repo",
            BEACON,
            "--trusted-root",
            str(CONF / "rekor2-dsse-happy-path" / "trusted_root.json"),
        ),
        1,
        "invalid signature",
        "conformance 'rekor2-dsse-invalid-sig_fail'",
    ),
    Row(
        "conf-rekor2-mismatch-envelope",
        CONF / "a.txt",
        conf("rekor2-dsse-mismatch-envelope_fail"),
        (
            "--repo",
            BEACON,
            "--trusted-root",
            str(CONF / "rekor2-dsse-happy-path" / "trusted_root.json"),
        ),
        1,
        "inconsistent",
        "conformance 'rekor2-dsse-mismatch-envelope_fail'",
    ),
    Row(
        "conf-rekor2-mismatch-sig",
        CONF / "a.txt",
        conf("rekor2-dsse-mismatch-sig_fail"),
        (
            "--repo",
            BEACON,
            "--trusted-root",
            str(CONF / "rekor2-dsse-happy-path" / "trusted_root.json"),
        ),
        1,
        "inconsistent",
        "conformance 'rekor2-dsse-mismatch-sig_fail'",
    ),
    Row(
        "conf-wrong-source",
        CONF / "a.txt",
        conf("happy-path-intoto-in-dsse-v3"),
        ("--repo", "sigstore-conformance/other"),
        1,
        "source repository",
        "conformance identity file: the beacon repository is the expected identity",
    ),
    Row(
        "conf-message-signature",
        CONF / "a.txt",
        conf("happy-path-v0.3"),
        ("--repo", BEACON),
        3,
        "artifact signature",
        "conformance 'happy-path-v0.3' is a hashedrekord signature, not "
        "an attestation: `sigstore verify` passes it, provenance verification refuses it",
    ),
    Row(
        "conf-unknown-version",
        CONF / "a.txt",
        conf("bundle-unknown-version_fail"),
        ("--repo", BEACON),
        3,
        "unknown Sigstore bundle version",
        "conformance 'bundle-unknown-version_fail'",
    ),
    Row(
        "conf-malformed-json",
        CONF / "a.txt",
        conf("bundle-malformed-json_fail"),
        ("--repo", BEACON),
        3,
        "not JSON",
        "conformance 'bundle-malformed-json_fail'",
    ),
    Row(
        "conf-intoto-custom-root",
        CONF / "intoto-with-custom-trust-root" / "artifact",
        conf("intoto-with-custom-trust-root"),
        (
            "--repo",
            BEACON,
            "--trusted-root",
            str(CONF / "intoto-with-custom-trust-root" / "trusted_root.json"),
        ),
        1,
        "source repository",
        "conformance 'intoto-with-custom-trust-root' passes in sigstore-go as a bundle (its "
        "intoto/0.0.2 entry verifies here too); its certificate states no source repository "
        "or Build Config URI, so --repo and the statement's workflow cannot be verified",
    ),
    # --- sigstore-python's own assets and formats slsa-verifier handles elsewhere
    Row(
        "sp-rekor2-staging",
        CONF / "a.txt",
        SP / "a.dsse.staging-rekor-v2.txt.sigstore.json",
        ("--repo", BEACON, "--trusted-root", str(STAGING)),
        3,
        "externalParameters",
        "sigstore-python test_verifier.py: a.dsse.staging-rekor-v2 verifies with staging as a "
        "bundle; as SLSA v1 its predicate lacks the required externalParameters (and names a "
        "repository, not the signing beacon workflow, as builder): malformed provenance",
    ),
    Row(
        "sp-message-signature",
        SP / "bundle_v3_github.whl",
        SP / "bundle_v3_github.whl.sigstore",
        ("--repo", "trailofbits/rfc8785.py"),
        3,
        "artifact signature",
        "sigstore-python bundle_v3_github: a signature, not provenance",
    ),
    Row(
        "byob-delegator",
        SV / "gha_delegator" / "v2.1.0" / "binary-linux-amd64-workflow_dispatch",
        SV / "gha_delegator" / "v2.1.0" / "binary-linux-amd64-workflow_dispatch.build.slsa",
        ("--source-uri", EXAMPLE),
        3,
        "BYOB",
        f"{REGRESSION} delegatorBuilder cases (verified with the TRW --builder-id)",
    ),
    Row(
        "container-based-builder",
        SV / "gha_container-based" / "v2.1.0" / "binary-linux-amd64-workflow_dispatch",
        SV
        / "gha_container-based"
        / "v2.1.0"
        / "binary-linux-amd64-workflow_dispatch.intoto.build.slsa",
        ("--source-uri", EXAMPLE),
        3,
        "builder_container-based_slsa3.yml",
        f"{REGRESSION} container-based builder cases (slsa-verifier's BYOB path)",
    ),
    Row(
        "vsa-not-provenance",
        "sha256:" + "0" * 64,
        SV / "vsa" / "gce" / "v1" / "gke-gce-pre.bcid-vsa.jsonl",
        (
            "--source-uri",
            EXAMPLE,
            "--key",
            str(SV / "vsa" / "gce" / "v1" / "vsa_signing_public_key.pem"),
        ),
        3,
        "VSA",
        "slsa-verifier Test_runVerifyVSA 'success: gke' (only through verify-vsa)",
    ),
]


@pytest.fixture(autouse=True)
def _no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*_a: object, **_k: object) -> None:
        raise AssertionError("verification tried to use the network")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)


def _argv(row: Row) -> list[str]:
    target = (
        ["--artifact-digest", row.artifact]
        if isinstance(row.artifact, str)
        else [str(row.artifact)]
    )
    return ["slsa", "verify", *target, "--provenance", str(row.provenance), "--builtin", *row.flags]


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_producer_table(cli, row: Row) -> None:
    r = cli(*_argv(row))
    assert r.code == row.code, f"{row.anchor}\n{r.out}{r.err}"
    assert "Traceback" not in r.err
    if row.code == 3:
        assert row.words in r.err and str(row.provenance) in r.err, r.err
        assert "unsupported" in r.err or "no " in r.err or "not " in r.err
    else:
        assert r.out.startswith("PASS" if row.code == 0 else "FAIL"), r.out
        assert row.words in r.out, r.out


@pytest.mark.parametrize("row", ROWS, ids=[r.id for r in ROWS])
def test_producer_table_json(cli, row: Row) -> None:
    """--json: exactly one document on stdout on every outcome, failures and errors included."""
    r = cli(*_argv(row), "--json")
    assert r.code == row.code
    doc = json.loads(r.out)
    assert doc["verified"] is (row.code == 0)
    if row.code == 1:
        assert doc["failures"] and {"what", "expected", "actual"} <= doc["failures"][0].keys()
    if row.code == 3:
        assert doc["exit_code"] == 3 and row.words in doc["error"]["message"]


def test_table_covers_the_producers_and_both_outcomes() -> None:
    prefixes = {r.id.split("-")[0] for r in ROWS}
    assert {"generic", "go", "bcr", "gh", "conf"} <= prefixes
    for prefix in ("generic", "go", "bcr", "gh"):
        codes = {r.code for r in ROWS if r.id.startswith(prefix + "-")}
        assert {0, 1} <= codes, prefix
    # Every conformance statement is signed by the beacon workflow but names another builder:
    # none is SLSA provenance of its signer (see test_genuine_signature_naming_another_builder).
    assert {r.code for r in ROWS if r.id.startswith("conf-")} == {1, 3}


def test_intoto_entry_with_a_custom_root_is_authentic_but_proves_no_repository(cli) -> None:
    row = next(r for r in ROWS if r.id == "conf-intoto-custom-root")
    doc = json.loads(cli(*_argv(row), "--json").out)
    assert doc["authentic"] is True and doc["verified"] is False
    assert doc["facts"]["verified"]["time_source"] == "rekor-set"
    assert "source_repository" not in doc["facts"]["verified"]


SIGNED_BY_A_CLAIMING_B = ["conf-dsse-happy"]


@pytest.mark.parametrize("row_id", SIGNED_BY_A_CLAIMING_B)
def test_genuine_signature_naming_another_builder_is_refused(cli, row_id: str) -> None:
    """The signature verifies (authentic), yet the statement's builder is not who signed."""
    row = next(r for r in ROWS if r.id == row_id)
    r = cli(*_argv(row), "--json")
    doc = json.loads(r.out)
    assert r.code == 1 and doc["authentic"] is True and doc["verified"] is False
    signer = doc["facts"]["verified"]["signer"]
    claimed = doc["facts"]["claimed"]["builder_id"]
    assert signer.startswith(f"https://github.com/{BEACON}/") and claimed != signer
    first = doc["failures"][0]
    assert first["what"].startswith("builder id the statement names")
    assert first["actual"] == claimed and signer in first["expected"]


def _edited(tmp_path: Path, source: Path, edit) -> Path:  # type: ignore[no-untyped-def]
    bundle = json.loads(source.read_text())
    edit(bundle)
    out = tmp_path / source.name
    out.write_text(json.dumps(bundle))
    return out


def test_flipped_signature_byte_in_a_github_attestation_fails(cli, tmp_path: Path) -> None:
    def flip(bundle: dict) -> None:
        sig = bytearray(base64.b64decode(bundle["dsseEnvelope"]["signatures"][0]["sig"]))
        sig[-5] ^= 0x01
        bundle["dsseEnvelope"]["signatures"][0]["sig"] = base64.b64encode(bytes(sig)).decode()

    edited = _edited(tmp_path, GH / "reusable-workflow-attestation.sigstore.json", flip)
    r = cli(
        "slsa",
        "verify",
        GH / "reusable-workflow-artifact",
        "-b",
        edited,
        "--builtin",
        "--repo",
        "malancas/attest-demo",
        "--signer-workflow",
        ATTEST_WF,
    )
    assert r.code == 1 and r.out.startswith("FAIL") and "signature" in r.out


def test_swapped_payload_with_the_artifact_digest_fails(cli, tmp_path: Path) -> None:
    """An attacker rewrites the statement to name their artifact: the signature no longer holds."""

    def swap(bundle: dict) -> None:
        env = bundle["dsseEnvelope"]
        statement = json.loads(base64.b64decode(env["payload"]))
        statement["subject"][0]["digest"]["sha256"] = GO_DIGEST.removeprefix("sha256:")
        env["payload"] = base64.b64encode(json.dumps(statement).encode()).decode()

    edited = _edited(tmp_path, BCR / "MODULE.bazel.intoto.jsonl", swap)
    r = cli(
        "slsa",
        "verify",
        "--artifact-digest",
        GO_DIGEST,
        "-b",
        edited,
        "--builtin",
        "--source-uri",
        "github.com/aspect-build/rules_lint",
        "--builder-id",
        BCR_PUBLISH,
    )
    assert r.code == 1 and r.out.startswith("FAIL")
    assert "no subject" not in r.out  # refused for the signature, before any subject is read


def test_jsonl_picks_the_bundle_whose_subject_matches(cli, tmp_path: Path) -> None:
    """slsa-verifier: an .intoto.jsonl with several bundles verifies the one for the artifact."""
    several = tmp_path / "several.intoto.jsonl"
    several.write_text(
        (BCR / "MODULE.bazel.intoto.jsonl").read_text().strip()
        + "\n"
        + (GENERIC / "binary-linux-amd64-push-v14.intoto.jsonl").read_text().strip()
        + "\n"
    )
    r = cli(
        "slsa",
        "verify",
        GENERIC_BIN,
        "-b",
        several,
        "--builtin",
        "--source-uri",
        EXAMPLE,
        "--source-tag",
        "v14",
    )
    assert r.code == 0 and "refs/tags/v14" in r.out, r.out + r.err
    wrong = cli(
        "slsa",
        "verify",
        GENERIC_BIN,
        "-b",
        several,
        "--builtin",
        "--source-uri",
        EXAMPLE,
        "--source-tag",
        "v15",
    )
    assert wrong.code == 1 and "source tag" in wrong.out
