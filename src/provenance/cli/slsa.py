"""`provenance slsa attest|verify`."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from provenance import _config
from provenance.cli._common import emit_json, guard_output, json_option, report, say

if TYPE_CHECKING:
    from provenance.attest.slsa.verify import Expectations, SlsaResult

GITHUB_ISSUER = "https://token.actions.githubusercontent.com"


@click.group()
def slsa() -> None:
    """Produce and check SLSA v1 provenance for trained models.

    \b
    Example:
      provenance slsa attest --subject 'models/**' --layout root.layout \\
          --layout-key keys/owner.pub --key keys/trainer -o model.intoto.jsonl
      provenance slsa verify models/model.safetensors --provenance model.intoto.jsonl \\
          --source-uri github.com/ORG/REPO --key keys/trainer.pub
    """


@slsa.command()
@click.option(
    "--subject",
    "subjects",
    multiple=True,
    required=True,
    metavar="PATTERN",
    help="Files the provenance is about (repeatable).",
)
@click.option("--links", "links_dir", help="Links directory [env: PROVENANCE_LINKS_DIR].")
@click.option("--base", default=".", show_default=True)
@click.option("--key", help="Sign with this private key or signer URI (DSSE).")
@click.option("--pub-key", help="Public key of a URI signer.")
@click.option(
    "--sigstore",
    "use_sigstore",
    is_flag=True,
    help="Sign keylessly with the ambient OIDC identity (GitHub Actions).",
)
@click.option("--layout", required=True, help="Signed layout; the chain is verified first.")
@click.option(
    "--layout-key", "layout_keys", required=True, multiple=True, help="Layout owner public key."
)
@click.option("--builder-id", help="runDetails.builder.id [default: from GitHub Actions].")
@click.option("--repository", help="Source repository URI [default: from GitHub Actions].")
@click.option("--ref", help="Source ref [default: from GitHub Actions].")
@click.option("-o", "--output", required=True, help="Where to write the signed provenance.")
@json_option
def attest(
    subjects: tuple[str, ...],
    links_dir: str | None,
    base: str,
    key: str | None,
    pub_key: str | None,
    use_sigstore: bool,
    layout: str,
    layout_keys: tuple[str, ...],
    builder_id: str | None,
    repository: str | None,
    ref: str | None,
    output: str,
    as_json: bool,
) -> None:
    """Write SLSA v1 provenance for the SUBJECT files, built from the verified step links.

    The layout and links are verified first (exit 1 if they do not); the statement is built
    from exactly what verified.

    \b
    Example:
      provenance slsa attest --subject 'models/**' --layout root.layout \\
          --layout-key keys/owner.pub --key keys/trainer -o model.intoto.jsonl
    """
    from provenance._fs import write_atomic
    from provenance.attest.slsa.build import build_statement, sign_with_key, sign_with_sigstore
    from provenance.errors import UsageError, VerificationError
    from provenance.signing import load_signer
    from provenance.verification import verify

    if bool(key) == use_sigstore:
        raise UsageError("give exactly one of --key or --sigstore")
    if use_sigstore and (builder_id or repository or ref):
        # With a certificate, builder, repository and ref are what Fulcio certifies; a statement
        # naming others would be refused by every verifier (and here).
        raise UsageError(
            "--builder-id, --repository and --ref are taken from the signing identity with "
            "--sigstore; give them only with --key"
        )
    links = _config.links_dir(links_dir)
    link_files = [str(p) for p in Path(links).glob("*.link")] if os.path.isdir(links) else []
    guard_output(output, [layout, *link_files], [key, pub_key, *layout_keys])  # before hashing
    verification = verify(layout, list(layout_keys), links, base)
    if not verification.ok:
        raise VerificationError(verification.verdict)
    token = None
    if use_sigstore:  # the builder is the workflow the certificate will name
        from provenance.signing import sigstore

        token = sigstore.ambient_token()
        builder_id = sigstore.signing_workflow(token)
    statement = build_statement(
        subjects,
        verification,
        base,
        builder_id=builder_id,
        repository=repository,
        ref=ref,
    )
    subject_files = [os.path.normpath(os.path.join(base, s.name)) for s in statement.subjects]
    guard_output(output, [layout, *link_files, *subject_files], [key, pub_key])
    data = (
        sign_with_sigstore(statement, token)
        if token is not None
        else sign_with_key(statement, load_signer(str(key), pub_key))
    )
    write_atomic(output, data)
    if as_json:
        emit_json({"output": output, "statement": statement.to_dict()})
    else:
        say(
            f"wrote {output}: {len(statement.subjects)} subject(s), builder "
            f"{statement.predicate.builder_id} (a claim of the signer)"
        )


@slsa.command(name="verify")
@click.argument("artifact", required=False)
@click.option(
    "--provenance",
    "--provenance-path",
    "--bundle",
    "-b",
    "provenance_path",
    required=True,
    help="Provenance: Sigstore bundle (.json/.sigstore.json), .intoto.jsonl, or DSSE envelope.",
)
@click.option("--artifact-digest", help="Verify by digest (sha256:HEX) instead of ARTIFACT.")
@click.option(
    "--source-uri", "--repo", "source_uri", help="Expected source, e.g. github.com/ORG/REPO."
)
@click.option("--owner", help="Expected repository owner (gh --owner).")
@click.option(
    "--builder-id",
    help="Expected builder / signer workflow, with @ref, short @vX.Y.Z, or no ref "
    "[default: a trusted slsa-github-generator builder].",
)
@click.option(
    "--signer-workflow",
    help="Expected signing workflow ([host/]ORG/REPO/.github/workflows/F.yml[@ref]); "
    "needed for attestations made in a reusable workflow.",
)
@click.option(
    "--signer-repo",
    help="Expected repository (OWNER/REPO) of the signing reusable workflow (gh).",
)
@click.option(
    "--signer-digest", help="Expected commit of the signing workflow (Build Signer Digest, gh)."
)
@click.option(
    "--cert-oidc-issuer",
    default=GITHUB_ISSUER,
    show_default=True,
    help="Expected OIDC issuer of the signing certificate (GitHub Enterprise: its own).",
)
@click.option("--source-branch", help="Expected branch.")
@click.option("--source-tag", help="Expected tag (exact).")
@click.option(
    "--source-versioned-tag", help="Expected semver tag: vX matches vX.*.*, vX.Y matches vX.Y.*."
)
@click.option("--source-ref", help="Expected git ref, exact (refs/heads/B, refs/tags/T; gh).")
@click.option("--source-digest", help="Expected source commit (Source Repository Digest, gh).")
@click.option(
    "--deny-self-hosted-runners",
    "deny_self_hosted",
    is_flag=True,
    help="Refuse provenance not built on a GitHub-hosted runner (gh).",
)
@click.option(
    "--predicate-type",
    help="Expected predicate type [default: https://slsa.dev/provenance/v1 for GitHub "
    "attestations; v0.2 or v1 for slsa-github-generator and key-signed provenance].",
)
@click.option(
    "--build-workflow-input",
    "workflow_inputs",
    multiple=True,
    metavar="KEY=VALUE",
    help="Expected input of the workflow_dispatch run (repeatable, slsa-verifier).",
)
@click.option(
    "--trusted-root",
    "--custom-trusted-root",
    help="Sigstore trusted root: a JSON file, or `github` (GitHub's own instance, private "
    "repositories) or `public-good` [default: public-good, pinned in sigstore-python].",
)
@click.option(
    "--digest-alg",
    type=click.Choice(["sha256", "sha512"]),
    default="sha256",
    show_default=True,
    help="Digest the subject is matched by (gh; npm provenance names only sha512).",
)
@click.option("--key", "pub_key", help="Public key, for key-signed (DSSE) provenance.")
@click.option("--slsa-verifier", "slsa_verifier", help="Path to slsa-verifier [default: PATH].")
@click.option(
    "--builtin", is_flag=True, help="Use the built-in verifier even if slsa-verifier is installed."
)
@json_option
def verify_cmd(
    artifact: str | None,
    provenance_path: str,
    artifact_digest: str | None,
    trusted_root: str | None,
    digest_alg: str,
    pub_key: str | None,
    slsa_verifier: str | None,
    builtin: bool,
    as_json: bool,
    **expected: Any,
) -> None:
    """Check that ARTIFACT was built from the expected source by a trusted builder.

    Offline, against a pinned Sigstore trusted root: slsa-github-generator provenance
    (slsa-verifier semantics), GitHub artifact attestations (`gh attestation verify`
    semantics) and key-signed DSSE statements (--key). Uses slsa-verifier instead when it is on
    PATH and --builtin is not given. Exits 1 when verification fails, 3 for invalid or
    unsupported provenance; with --json, one document on stdout on every outcome.

    \b
    Example:
      provenance slsa verify binary --provenance binary.intoto.jsonl \\
          --source-uri github.com/slsa-framework/example-package --source-branch main
      provenance slsa verify app.tgz -b app.sigstore.json --repo ORG/REPO \\
          --signer-workflow ORG/shared/.github/workflows/release.yml
    """
    from provenance.errors import ProvenanceError

    try:
        result = _verify(
            artifact,
            provenance_path,
            artifact_digest,
            _expectations(expected),
            trusted_root=trusted_root,
            pub_key=pub_key,
            slsa_verifier=slsa_verifier,
            builtin=builtin,
            digest_alg=digest_alg,
        )
    except ProvenanceError as exc:
        if as_json:  # one document on stdout for every outcome; the message still goes to stderr
            emit_json(
                {
                    "artifact": artifact or artifact_digest,
                    "provenance": provenance_path,
                    "verified": False,
                    "error": {"type": type(exc).__name__, "message": str(exc)},
                    "exit_code": exc.exit_code,
                }
            )
        raise
    report(result, as_json)


def _expectations(options: dict[str, Any]) -> Expectations:
    """The expectation flags, by name, as validated Expectations (usage errors: exit 2)."""
    from provenance.attest.slsa import parse_inputs
    from provenance.attest.slsa.verify import Expectations

    return Expectations(
        options["source_uri"],
        options["builder_id"],
        options["source_branch"],
        options["source_tag"],
        options["source_versioned_tag"],
        owner=options["owner"],
        signer_workflow=options["signer_workflow"],
        issuer=options["cert_oidc_issuer"],
        signer_repo=options["signer_repo"],
        signer_digest=options["signer_digest"],
        source_ref=options["source_ref"],
        source_digest=options["source_digest"],
        deny_self_hosted=options["deny_self_hosted"],
        predicate_type=options["predicate_type"],
        workflow_inputs=parse_inputs(options["workflow_inputs"]),
    )


def _verify(
    artifact: str | None,
    provenance_path: str,
    artifact_digest: str | None,
    expect: Expectations,
    *,
    trusted_root: str | None,
    pub_key: str | None,
    slsa_verifier: str | None,
    builtin: bool,
    digest_alg: str = "sha256",
) -> SlsaResult:
    from provenance.attest.slsa.verify import (
        find_slsa_verifier,
        verify_builtin,
        verify_with_slsa_verifier,
    )
    from provenance.errors import UsageError
    from provenance.signing import load_public_key

    # slsa-verifier takes neither a trusted root nor an issuer: with either, the built-in
    # verifier runs (never drop a check by delegating; slsa-verifier would also go online).
    use_builtin = (
        builtin
        or pub_key
        or artifact_digest
        or trusted_root
        or expect.needs_builtin
        or digest_alg != "sha256"
    )
    binary = None if use_builtin else find_slsa_verifier(slsa_verifier)
    if binary:
        if not artifact:
            raise UsageError("give ARTIFACT")
        return verify_with_slsa_verifier(binary, artifact, provenance_path, expect)
    key = load_public_key(pub_key) if pub_key else None
    return verify_builtin(
        artifact,
        provenance_path,
        expect,
        trusted_root=trusted_root,
        key=key,
        digest=artifact_digest,
        digest_alg=digest_alg,
    )


COMMANDS = [slsa]
