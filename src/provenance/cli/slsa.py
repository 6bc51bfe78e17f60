"""`provenance slsa attest|verify`."""

from __future__ import annotations

import os
from pathlib import Path

import click

from provenance import _config
from provenance.cli._common import emit_json, guard_output, json_option, report, say


@click.group()
def slsa() -> None:
    """Produce and check SLSA v1 provenance for trained models.

    \b
    Example:
      provenance slsa attest --subject 'models/**' --key keys/trainer -o model.intoto.jsonl
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
@click.option("--layout", help="Signed layout whose digest is recorded.")
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
    layout: str | None,
    builder_id: str | None,
    repository: str | None,
    ref: str | None,
    output: str,
    as_json: bool,
) -> None:
    """Write SLSA v1 provenance for the SUBJECT files, built from the step links.

    \b
    Example:
      provenance slsa attest --subject 'models/**' --key keys/trainer -o model.intoto.jsonl
    """
    from provenance._fs import write_atomic
    from provenance.errors import UsageError
    from provenance.signing import load_signer
    from provenance.slsa.statement import build_statement, sign_with_key, sign_with_sigstore

    if bool(key) == use_sigstore:
        raise UsageError("give exactly one of --key or --sigstore")
    links = _config.links_dir(links_dir)
    link_files = [str(p) for p in Path(links).glob("*.link")] if os.path.isdir(links) else []
    guard_output(output, [layout, *link_files], [key, pub_key])  # before hours of hashing
    statement = build_statement(
        subjects,
        links,
        base,
        builder_id=builder_id,
        layout=layout,
        repository=repository,
        ref=ref,
    )
    subject_files = [os.path.normpath(os.path.join(base, s["name"])) for s in statement["subject"]]
    guard_output(output, [layout, *link_files, *subject_files], [key, pub_key])
    data = (
        sign_with_sigstore(statement)
        if use_sigstore
        else sign_with_key(statement, load_signer(str(key), pub_key))
    )
    write_atomic(output, data)
    if as_json:
        emit_json({"output": output, "statement": statement})
    else:
        say(
            f"wrote {output}: {len(statement['subject'])} subject(s), builder "
            f"{statement['predicate']['runDetails']['builder']['id']}"
        )


@slsa.command(name="verify")
@click.argument("artifact")
@click.option("--provenance", "provenance_path", required=True, help="Provenance file.")
@click.option("--source-uri", required=True, help="Expected source, e.g. github.com/ORG/REPO.")
@click.option("--builder-id", help="Expected builder id (default: trusted slsa-github-generator).")
@click.option("--source-branch", help="Expected branch.")
@click.option("--source-tag", help="Expected tag.")
@click.option("--trusted-root", help="Sigstore trusted root JSON [default: sigstore-python's].")
@click.option("--key", "pub_key", help="Public key, for key-signed (DSSE) provenance.")
@click.option("--slsa-verifier", "slsa_verifier", help="Path to slsa-verifier [default: PATH].")
@click.option(
    "--builtin", is_flag=True, help="Use the built-in verifier even if slsa-verifier is installed."
)
@json_option
def verify_cmd(
    artifact: str,
    provenance_path: str,
    source_uri: str,
    builder_id: str | None,
    source_branch: str | None,
    source_tag: str | None,
    trusted_root: str | None,
    pub_key: str | None,
    slsa_verifier: str | None,
    builtin: bool,
    as_json: bool,
) -> None:
    """Check that ARTIFACT was built from SOURCE by a trusted builder, per its provenance.

    Uses slsa-verifier when it is on PATH (Sigstore provenance only), else the built-in,
    offline verifier. Exits 1 when verification fails, 3 for unsupported provenance.

    \b
    Example:
      provenance slsa verify binary --provenance binary.intoto.jsonl \\
          --source-uri github.com/slsa-framework/example-package --source-branch main
    """
    from provenance.signing import load_public_key
    from provenance.slsa.verify import (
        Expectations,
        find_slsa_verifier,
        verify_builtin,
        verify_with_slsa_verifier,
    )

    expect = Expectations(source_uri, builder_id, source_branch, source_tag)
    binary = None if (builtin or pub_key) else find_slsa_verifier(slsa_verifier)
    if binary:
        result = verify_with_slsa_verifier(binary, artifact, provenance_path, expect)
    else:
        key = load_public_key(pub_key) if pub_key else None
        result = verify_builtin(
            artifact, provenance_path, expect, trusted_root=trusted_root, key=key
        )
    report(result.to_dict(), result.verdict, result.failures, as_json, result.verified)


COMMANDS = [slsa]
