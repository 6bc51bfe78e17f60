"""`provenance scan`: refuse model files that run code on load; optionally sign the verdict."""

from __future__ import annotations

import click

from provenance.cli._common import emit_json, json_option, say


@click.command()
@click.argument("paths", nargs=-1, required=True, metavar="PATH...")
@click.option(
    "--allow",
    "allow",
    multiple=True,
    metavar="FILE",
    help="Accept this pickle-based file by name (repeatable); dangerous imports still fail.",
)
@click.option("--base", default=".", show_default=True, help="Paths are recorded relative to it.")
@click.option("--key", help="Sign the result with this private key or signer URI.")
@click.option("--pub-key", help="Public key of a URI signer.")
@click.option("-o", "--output", help="Write the signed scan attestation (.intoto.jsonl) here.")
@json_option
def scan(
    paths: tuple[str, ...],
    allow: tuple[str, ...],
    base: str,
    key: str | None,
    pub_key: str | None,
    output: str | None,
    as_json: bool,
) -> None:
    """Scan model files and directories without loading them.

    Pickle-based files (.pkl, .pt, .bin, joblib, numpy object arrays) and Keras Lambda
    layers fail unless --allow names them; safetensors, ONNX and GGUF must be well-formed.
    Exits 1 with each file and finding, 3 if a path cannot be read. With --key and -o the
    verdict (PASSED or FAILED) is written as a signed in-toto test-result attestation.

    \b
    Example:
      provenance scan models/ --key keys/scanner -o scan.intoto.jsonl
    """
    from provenance._scanning import scan_paths
    from provenance.errors import UsageError

    if bool(key) != bool(output):
        raise UsageError("--key and -o/--output go together (sign and write the attestation)")
    report = scan_paths(paths, base=base, allow=allow)
    doc = report.to_dict()
    if key and output:
        from provenance.attest.scan import build_scan_statement
        from provenance.attest.statement import write_jsonl
        from provenance.signing import load_signer

        write_jsonl(output, [build_scan_statement(report).sign(load_signer(key, pub_key))])
        doc["attestation"] = output
    if as_json:
        emit_json(doc)
    else:
        say(report.verdict())
        for failure in report.failures():
            say(f"- {failure}")
        if output:
            say(f"wrote {output}")
    if not report.ok:
        raise click.exceptions.Exit(1)


COMMANDS = [scan]
